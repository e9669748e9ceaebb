"""Publishing once per idempotency key on the local stack (docs/design.md §7.8): the same key
twice, from the operator command line, or from ten threads at once, or after a publisher
that stopped midway, gives one event and one delivery at a real receiver."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest

from devstack.receiver import Receiver
from tests.support.stack import Client, LocalStack
from webhook_service import events
from webhook_service.errors import DependencyError
from webhook_service.jobqueue import JobQueue

pytestmark = pytest.mark.integration

SETTLE_SECONDS = 5.0  # how long to watch for a second delivery that must not come


@pytest.fixture
def inbox(fresh: Client, receiver: Receiver) -> str:
    """The path prefix of a receiver's config that is the organisation's default."""
    prefix = f"/ok/idempotent-{uuid.uuid4().hex[:8]}/"
    config, _ = fresh.create_and_wait(receiver.url(prefix))
    assert config["state"] == "valid"
    assert fresh.post("/organisation", json={"webhook_config_default": config["id"]}).status_code == 200
    return prefix


def publish_in_process(stack: LocalStack, client: Client, idempotency_key: str, data: dict[str, Any]) -> str:
    """What the platform calls (events.publish), in this process, on the stack's table and queue."""
    queue = JobQueue(stack.queue_url, stack.aws_client("sqs"))
    event = events.publish(
        client.organisation,
        "session",
        "completed",
        data,
        idempotency_key=idempotency_key,
        store=stack.store(),
        queue=queue,
    )
    return event.id


def sessions_listed(client: Client) -> list[str]:
    page = client.get("/events", params={"type": "session", "limit": 100}).json()
    return [event["id"] for event in page["data"]]


def sessions_delivered(receiver: Receiver, inbox: str) -> list[str]:
    """The ids of the `session` events the receiver got (the config's test came there too)."""
    bodies = [json.loads(delivery.body) for delivery in receiver.deliveries_to(inbox)]
    return [body["id"] for body in bodies if body["type"] == "session"]


def no_second_delivery(receiver: Receiver, inbox: str, event_id: str) -> None:
    """Watch the receiver for SETTLE_SECONDS: nothing but the one delivery of `event_id` may
    come. (The shared stack's queue always holds other tests' delayed retries, so "no job
    left" is never true of it; a second job of this event would run within these seconds.)"""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        assert sessions_delivered(receiver, inbox) == [event_id]
        time.sleep(0.25)


def delivered_once(stack: LocalStack, client: Client, receiver: Receiver, inbox: str, event_id: str) -> None:
    """The event is delivered, every job is done, and the receiver got it exactly once."""
    assert client.wait_event(event_id)["state"] == "delivered"
    no_second_delivery(receiver, inbox, event_id)
    assert sessions_listed(client) == [event_id]


def test_cli_publish_same_idempotency_key_twice_delivers_once(
    stack: LocalStack, fresh: Client, receiver: Receiver, inbox: str
) -> None:
    command = ["publish-event", "--organisation", fresh.organisation, "--type", "session", "--action", "completed"]
    command += ["--data", '{"id": "s1"}', "--idempotency-key", "order-42/attempt"]

    first = stack.operator(*command)
    second = stack.operator(*command)

    assert second["id"] == first["id"]
    delivered_once(stack, fresh, receiver, inbox, first["id"])
    assert stack.operator(*command)["state"] == "delivered"  # a third, after delivery: the same event
    no_second_delivery(receiver, inbox, first["id"])


def test_publish_same_key_from_ten_threads_at_once_delivers_once(
    stack: LocalStack, fresh: Client, receiver: Receiver, inbox: str
) -> None:
    start = threading.Barrier(10)
    answers: list[str] = []

    def publisher() -> None:
        start.wait(timeout=10)
        answers.append(publish_in_process(stack, fresh, "checkout-7", {"id": "s7"}))

    threads = [threading.Thread(target=publisher) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(answers) == 10
    assert len(set(answers)) == 1
    delivered_once(stack, fresh, receiver, inbox, answers[0])


def test_a_publisher_that_queued_its_job_and_stopped_is_finished_by_the_next_and_delivered_once(
    stack: LocalStack, fresh: Client, receiver: Receiver, inbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stack.store()

    def stopped(event: Any) -> Any:
        raise DependencyError("put_item: the publisher stopped here")

    with monkeypatch.context() as crash:
        crash.setattr(store.events, "create", stopped)
        with pytest.raises(DependencyError):
            publish_in_process(stack, fresh, "invoice-9", {"id": "s9"})
    assert sessions_listed(fresh) == []  # its job is on its way, waiting for an event

    finished = publish_in_process(stack, fresh, "invoice-9", {"id": "s9"})

    delivered_once(stack, fresh, receiver, inbox, finished)
