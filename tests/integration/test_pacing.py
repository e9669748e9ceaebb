"""A config's delivery rate on the local stack (docs/design.md §19.1): a hundred events
published at once to a config with `rate_limit: 5` reach a real receiver, whose own log
shows at most five in any second, every one delivered at its first attempt."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devstack.receiver import Delivery, Receiver
from tests.support.stack import Client, LocalStack
from tests.support.windows import most_in_any_window

pytestmark = pytest.mark.integration

RATE = 5
EVENTS = 100
# 100 slots 1.05 / 5 s apart take 21 s; the bound leaves room for a loaded machine.
DELIVERED_WITHIN_SECONDS = 120.0
# "At most the rate in any second, measured at the receiver, within 10 %": no window of
# 1 / 1.1 s holds more than RATE deliveries.
WINDOW_SECONDS = 1 / 1.1


def sessions(receiver: Receiver, inbox: str) -> list[tuple[str, Delivery]]:
    got = [(json.loads(d.body), d) for d in receiver.deliveries_to(inbox)]
    return [(body["id"], d) for body, d in got if body["type"] == "session"]


def test_a_hundred_events_at_once_reach_a_paced_receiver_at_its_rate_and_all_at_the_first_attempt(
    stack: LocalStack, fresh: Client, receiver: Receiver
) -> None:
    inbox = f"/ok/paced-{uuid.uuid4().hex[:8]}/"
    config, _ = fresh.create_and_wait(receiver.url(inbox))
    assert fresh.post("/organisation", json={"webhook_config_default": config["id"]}).status_code == 200
    updated = fresh.post(f"/configs/webhook/{config['id']}", json={"rate_limit": RATE}).json()
    assert (updated["rate_limit"], updated["state"]) == (RATE, "valid")

    with ThreadPoolExecutor(max_workers=10) as pool:
        published = list(pool.map(lambda n: stack.publish(fresh.organisation, {"n": n})["id"], range(EVENTS)))

    deadline = time.monotonic() + DELIVERED_WITHIN_SECONDS
    while len(sessions(receiver, inbox)) < EVENTS and time.monotonic() < deadline:
        time.sleep(0.5)
    stack.wait_until_jobs_done()

    got = sessions(receiver, inbox)
    assert sorted(event_id for event_id, _ in got) == sorted(published)  # each once, none missing
    times = [delivery.received_at for _, delivery in got]
    busiest = most_in_any_window(times, WINDOW_SECONDS)
    span = max(times) - min(times)
    print(
        f"paced: {EVENTS} deliveries over {span:.1f} s; most in any {WINDOW_SECONDS:.3f} s window: {busiest};"
        f" most in any 1 s window: {most_in_any_window(times, 1.0)}"
    )
    assert busiest <= RATE
    assert span >= (EVENTS - 1) / RATE  # not merely spread: no faster than the rate overall

    listed: list[dict[str, Any]] = fresh.get("/events", params={"type": "session", "limit": EVENTS}).json()["data"]
    assert len(listed) == EVENTS
    assert {(e["state"], e["retries"], e["error"]) for e in listed} == {("delivered", 0, None)}
