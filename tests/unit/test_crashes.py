"""The deliver and publish paths killed between each pair of their writes and sends, then
run again as SQS and the sweep run them: no attempt is lost (each ends recorded with its
outcome), no claim sends twice, and no event is left without a job that carries it on.

A kill is a process dying: after the crash point it makes no more calls at all (no claim is
given back), and the job's message, never deleted, comes back after its visibility timeout,
by when the claim's lease has run out."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.support import FakeClock, FakeQueue, FakeSender, FakeServices
from webhook_service.domain.configs import ConfigState
from webhook_service.domain.delivery import DeliveryResult
from webhook_service.domain.events import EventState
from webhook_service.domain.tenants import Principal
from webhook_service.events import publish
from webhook_service.jobs.deliverer import Deliverer
from webhook_service.jobs.dispatch import handle_job
from webhook_service.jobs.event_attempts import MAX_WAITS
from webhook_service.service import configs as config_cases
from webhook_service.service import tenants as tenant_cases
from webhook_service.storage.store import Store

URL = "https://receiver.example/hooks"
VISIBILITY = 180  # the queues' visibility timeout: when a message not deleted comes back


class Killed(BaseException):
    """The process died (not an exception the code could catch and clean up after)."""


class Process:
    """One process's calls to the table, the queue and the receiver, counted; the call at
    `kill_at` (0-based, counting writes, sends and posts) is where it dies."""

    def __init__(self, kill_at: int | None) -> None:
        self.kill_at = kill_at
        self.steps: list[str] = []
        self.dead = False

    def step(self, name: str) -> None:
        if self.dead:
            raise Killed(name)
        if self.kill_at is not None and len(self.steps) == self.kill_at:
            self.dead = True
            raise Killed(name)
        self.steps.append(name)

    def read(self) -> None:
        if self.dead:
            raise Killed("read")


def run_in(process: Process, store: Store, queue: FakeQueue, sender: FakeSender, clock: FakeClock) -> Deliverer:
    """A deliverer whose every table write, queue send and receiver post is a step of `process`."""
    table = store.table
    write, get, batch_get = table.write, table.get, table.batch_get

    def killable_write(operation: str, request: dict[str, Any]) -> dict[str, Any]:
        process.step(operation)
        return write(operation, request)

    def killable_get(*args: Any, **kwargs: Any) -> Any:
        process.read()
        return get(*args, **kwargs)

    def killable_batch_get(*args: Any, **kwargs: Any) -> Any:
        process.read()
        return batch_get(*args, **kwargs)

    table.write = killable_write  # type: ignore[method-assign]
    table.get = killable_get  # type: ignore[method-assign]
    table.batch_get = killable_batch_get  # type: ignore[method-assign]

    class KillableQueue:
        def send(self, job: dict[str, Any], delay_seconds: int = 0) -> str:
            process.step("send")
            return queue.send(job, delay_seconds)

    class KillableSender:
        def post(self, url: str, body: bytes, headers: Any) -> DeliveryResult:
            process.step("post")
            return sender.post(url, body, headers)

    return Deliverer(store=store, sender=KillableSender(), queue=KillableQueue(), clock=clock, jitter=lambda: 0.0)


@pytest.fixture
def ready(services: FakeServices, caller: Principal, store: Store) -> str:
    """A valid config, the organisation's default."""
    config = config_cases.create_config(services, caller, {"url": URL})
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    store.configs.replace(replace(stored, state=ConfigState.VALID, open_test=None), stored.version, None)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    return str(config["id"])


def published(store: Store, caller: Principal, queue: FakeQueue) -> tuple[str, str]:
    event = publish(caller.organisation, "session", "completed", {"id": "s"}, store=store, queue=queue)
    return event.id, json.dumps(queue.jobs.pop())


def again(
    store: Store, queue: FakeQueue, sender: FakeSender, clock: FakeClock, job: str, after: float = VISIBILITY
) -> str:
    """The job's message back from SQS, in a new process (by default after the visibility
    timeout, when a claim's lease of at most the invocation's time has run out)."""
    clock.now += dt.timedelta(seconds=after)
    fresh = Store(store.table.name, store.table.client)
    deliverer = Deliverer(store=fresh, sender=sender, queue=queue, clock=clock, jitter=lambda: 0.0)
    return handle_job(deliverer, job).name


# claim, post, save: a delivery that succeeds
SUCCESS_STEPS = ["update_item", "post", "update_item"]
# claim, post, the next attempt's job, save: one that fails and is retried
RETRY_STEPS = ["update_item", "post", "send", "update_item"]


@pytest.mark.parametrize("kill_at", range(len(SUCCESS_STEPS)))
def test_a_delivery_killed_at_any_step_is_made_once_more_and_recorded_once(
    ready: str, caller: Principal, store: Store, clock: FakeClock, kill_at: int
) -> None:
    queue, sender = FakeQueue(), FakeSender(status=200)
    event_id, job = published(store, caller, queue)
    process = Process(kill_at)

    with pytest.raises(Killed):
        handle_job(run_in(process, Store(store.table.name, store.table.client), queue, sender, clock), job)
    assert process.steps == SUCCESS_STEPS[:kill_at]
    sent_before = len(sender.sent)

    assert again(store, queue, sender, clock, job) == "delivered"
    assert again(store, queue, sender, clock, job) == "duplicate"  # another copy: sends nothing

    event = store.events.get(caller.organisation, event_id)
    assert event is not None
    assert (event.state, event.attempts, event.claimed_until) == (EventState.DELIVERED, 1, None)
    (attempt,) = store.events.current_attempts(caller.organisation, event_id)  # recorded once
    assert attempt.status_code == 200
    # Each claim sent at most once: the killed one (if it got that far) and the takeover.
    assert len(sender.sent) == sent_before + 1 <= 2
    assert queue.jobs == []


@pytest.mark.parametrize("kill_at", range(len(RETRY_STEPS)))
def test_a_failing_attempt_killed_at_any_step_leaves_exactly_one_next_attempt_to_make(
    ready: str, caller: Principal, store: Store, clock: FakeClock, kill_at: int
) -> None:
    queue, sender = FakeQueue(), FakeSender(status=503)
    event_id, job = published(store, caller, queue)

    with pytest.raises(Killed):
        handle_job(run_in(Process(kill_at), Store(store.table.name, store.table.client), queue, sender, clock), job)
    assert again(store, queue, sender, clock, job) == "retrying"

    event = store.events.get(caller.organisation, event_id)
    assert event is not None
    assert (event.state, event.attempts, event.claimed_until) == (EventState.PENDING, 1, None)
    assert len(store.events.current_attempts(caller.organisation, event_id)) == 1
    # The next attempt's job: sent once by the takeover, and once before by the killed run
    # when it got that far; of the copies, one makes attempt 2 and the others do nothing.
    nexts = [json.dumps(j) for j in queue.jobs]
    assert 1 <= len(nexts) <= 2
    assert {json.loads(n)["attempt"] for n in nexts} == {2}
    sender.status = 200
    names = [again(store, queue, sender, clock, n, after=60 * 1.1 + 1) for n in nexts]
    assert sorted(names) == ["delivered"] + ["duplicate"] * (len(names) - 1)
    delivered = store.events.get(caller.organisation, event_id)
    assert delivered is not None
    assert (delivered.state, delivered.attempts) == (EventState.DELIVERED, 2)


PUBLISH_STEPS = ["send", "put_item", "put_item"]  # the job, what was published, its state


@pytest.mark.parametrize("kill_at", range(len(PUBLISH_STEPS)))
def test_a_publish_killed_at_any_step_leaves_no_event_or_one_with_its_job(
    ready: str, caller: Principal, store: Store, clock: FakeClock, kill_at: int
) -> None:
    queue, sender = FakeQueue(), FakeSender(status=200)
    process = Process(kill_at)
    killable = run_in(process, Store(store.table.name, store.table.client), queue, sender, clock)

    with pytest.raises(Killed):
        publish(caller.organisation, "session", "completed", {"id": "k"}, store=killable.store, queue=killable.queue)

    jobs = list(queue.jobs)
    if not jobs:  # killed before its job was sent: nothing was stored
        assert kill_at == 0
        return
    (job,) = jobs
    queue.jobs.clear()
    # The job arrives; the event was never made visible: it waits a little, then gives up.
    outcomes = []
    message = json.dumps(job)
    for _ in range(MAX_WAITS + 1):
        outcomes.append(again(store, queue, sender, clock, message, after=1))
        if queue.jobs:
            message = json.dumps(queue.jobs.pop())
    assert outcomes == ["waiting"] * MAX_WAITS + ["missing"]
    assert store.events.get(caller.organisation, job["event"]) is None
    assert sender.sent == []


def test_a_job_that_arrives_before_its_event_is_written_waits_and_then_delivers(
    ready: str, caller: Principal, store: Store, clock: FakeClock
) -> None:
    """The race the kill tests cannot show: the job first, the event a moment later."""
    queue, sender = FakeQueue(), FakeSender(status=200)
    real_create: Callable[..., Any] = store.events.create
    held: list[Any] = []

    def hold(event: Any) -> Any:
        held.append(event)
        return event

    store.events.create = hold  # type: ignore[method-assign]
    event = publish(caller.organisation, "session", "completed", {"id": "r"}, store=store, queue=queue)
    job = json.dumps(queue.jobs.pop())

    assert again(store, queue, sender, clock, job, after=0) == "waiting"
    real_create(*held)
    assert again(store, queue, sender, clock, json.dumps(queue.jobs.pop()), after=1) == "delivered"
    stored = store.events.get(caller.organisation, event.id)
    assert stored is not None
    assert stored.state == EventState.DELIVERED
