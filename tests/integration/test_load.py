"""Load on the local stack: 500 configs created by 16 concurrent clients against a real
receiver. Every config ends valid, every task succeeded, the dead-letter queue stays empty,
and nothing is lost or duplicated."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devstack.receiver import Receiver
from tests.support.stack import UNLIMITED, Client, LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.load]
CONFIGS = 500
CLIENTS = 16
DEADLINE_SECONDS = 600
CREATE_TRIES = 600


def test_500_configs_by_16_clients_all_end_valid(stack: LocalStack, fresh: Client, receiver: Receiver) -> None:
    # What is loaded here is storage and delivery, not the rates of design.md §18: lifted.
    stack.operator("set-limits", "--organisation", fresh.organisation, *UNLIMITED)

    def create(n: int) -> dict[str, Any]:
        # Past 100 open tests the organisation gets 429 limit-exceeded: wait and try again,
        # as a client should.
        for _ in range(CREATE_TRIES):
            response = fresh.post("/configs/webhook", json={"url": receiver.url(f"/ok/load/{n}/")})
            if response.status_code != 429:
                assert response.status_code == 201, response.text
                created: dict[str, Any] = response.json()
                return created
            time.sleep(0.5)
        raise AssertionError(f"config {n} still refused after {CREATE_TRIES} tries")

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        created = list(pool.map(create, range(CONFIGS)))
    ids = {c["id"] for c in created}

    # Watch the receiver (no load on the stack) until every test event arrived, then the API
    # until every write-back landed.
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline and len(delivered_ids(receiver)) < CONFIGS:
        time.sleep(1)
    valid: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        valid = list_all(fresh, "/configs/webhook", {"state": "valid"})
        if len(valid) >= CONFIGS:
            break
        time.sleep(2)
    tasks = list_all(fresh, "/tasks", {})
    dead = stack.aws_client("sqs").get_queue_attributes(
        QueueUrl=stack.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]

    assert len(ids) == CONFIGS  # nothing duplicated
    assert {c["id"] for c in valid} == ids  # nothing lost, everything valid
    assert len(tasks) == CONFIGS
    assert {t["state"] for t in tasks} == {"succeeded"}
    assert {t["target"] for t in tasks} == ids
    assert dead == "0"
    assert len(delivered_ids(receiver)) == CONFIGS


def delivered_ids(receiver: Receiver) -> set[str]:
    return {d.headers["webhook-id"] for d in receiver.deliveries_to("/ok/load/")}


def list_all(client: Client, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = None
    for _ in range(100):
        page = client.get(path, params={**params, "limit": "1000", **({"after_id": after} if after else {})}).json()
        found.extend(page["data"])
        if not page["has_more"]:
            return found
        after = page["data"][-1]["id"]
    raise AssertionError("more pages than expected")
