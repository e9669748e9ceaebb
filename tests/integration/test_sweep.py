"""The overdue sweep on a local stack of its own, whose scheduler runs the template's sweep
function every 2 s (DEVSTACK_SCHEDULE_SECONDS; the other tests' stack sweeps at the template's
rate, so its sweep never competes with them). A task whose job was lost hours ago is queued
again and really delivered; one whose job was lost again ends `queue-unavailable`.

A lost job is made by writing the task straight into the stack's table, as the service
would have written it, with no job behind it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.receiver import Receiver
from tests.integration.conftest import run_stack
from tests.support.stack import Client, LocalStack, new_caller
from webhook_service.domain.configs import new_test_task
from webhook_service.storage.codec import marshal
from webhook_service.storage.items import task_item
from webhook_service.storage.store import Store
from webhook_service.timefmt import utcnow

pytestmark = pytest.mark.integration
HOURS_AGO = dt.timedelta(hours=3)
SWEEP_SECONDS = "2"  # the template's rate is 10 minutes


@pytest.fixture(scope="module")
def sweeping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with run_stack(tmp_path_factory, "devstack-sweeping", {"DEVSTACK_SCHEDULE_SECONDS": SWEEP_SECONDS}) as started:
        yield started


@pytest.fixture
def owner(sweeping: LocalStack) -> Client:
    return new_caller(sweeping, "Sweep")


def write_lost_task(stack: LocalStack, client: Client, config_id: str, **extra: Any) -> str:
    dynamodb = stack.aws_client("dynamodb")
    config = Store(stack.table, dynamodb).configs.get(client.organisation, config_id)
    assert config is not None
    task = new_test_task(config, client.key, utcnow() - HOURS_AGO)
    dynamodb.put_item(TableName=stack.table, Item=marshal({**task_item(task), **extra}))
    return task.id


def test_a_task_whose_job_was_lost_is_queued_again_and_delivered(
    sweeping: LocalStack, owner: Client, receiver: Receiver
) -> None:
    config, first = owner.create_and_wait(receiver.url("/ok/sweep-requeue/"))
    assert first["state"] == "succeeded"
    before = len(receiver.deliveries_to("/ok/sweep-requeue/"))

    task_id = write_lost_task(sweeping, owner, config["id"])
    task = owner.wait_task(task_id, timeout=30)

    assert task["state"] == "succeeded"
    assert len(receiver.deliveries_to("/ok/sweep-requeue/")) == before + 1
    assert owner.get(f"/configs/webhook/{config['id']}").json()["state"] == "valid"


def test_a_task_whose_job_was_lost_again_ends_queue_unavailable(
    sweeping: LocalStack, owner: Client, receiver: Receiver
) -> None:
    config, _ = owner.create_and_wait(receiver.url("/ok/sweep-end/"))
    before = len(receiver.deliveries_to("/ok/sweep-end/"))

    task_id = write_lost_task(sweeping, owner, config["id"], sweeps=1)  # already queued again once
    task = owner.wait_task(task_id, timeout=30)

    assert (task["state"], task["error"], task["result"]) == ("failed", "queue-unavailable", None)
    assert task["date_completed"] is not None
    assert len(receiver.deliveries_to("/ok/sweep-end/")) == before  # nothing was sent
    assert owner.get(f"/configs/webhook/{config['id']}").json()["state"] == "valid"  # untouched
