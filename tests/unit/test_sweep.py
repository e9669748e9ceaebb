"""The overdue sweep (webhook_service.sweep): a task or event whose job was lost is queued
again once, then ended `failed`/`queue-unavailable`; nothing else is touched.

These tests run their clock in 2020, before every other unit test's items, so the oldest
items of the shared table's ByOpen index are theirs."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import pytest

from devstack import aws
from tests.unit.support import (
    Backing,
    Context,
    FakeClock,
    FakeDeadLetters,
    FakeQueue,
    FakeSender,
    FakeServices,
    ScriptedContext,
    emf_metrics,
    json_lines,
    load_function,
)
from webhook_service import sweep as sweep_module
from webhook_service.domain.configs import Task, TaskState, new_config, new_test_task
from webhook_service.domain.events import EventState, new_event
from webhook_service.domain.tenants import Principal
from webhook_service.jobqueue import JobQueue
from webhook_service.jobs.deliverer import Deliverer
from webhook_service.jobs.dispatch import handle_job
from webhook_service.lanes import event_job
from webhook_service.service import configs as config_cases
from webhook_service.service import tasks as task_cases
from webhook_service.storage.keys import OPEN_SHARDS, item_key, open_keys, open_pk
from webhook_service.storage.store import Store
from webhook_service.sweep import sweep

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

URL = "https://receiver.example/hooks/"
START = dt.datetime(2020, 1, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def store(backing: Backing) -> Store:
    """The table through one call at a time: the sweep writes from several threads, and moto's
    in-process DynamoDB is not safe for concurrent transactions (as devstack.aws.serial says)."""
    return Store(backing.table_name, aws.serial(backing.dynamodb))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def lost_queue() -> FakeQueue:
    """Where the sweep's jobs go; the service's own jobs went to `queue` and were 'lost'."""
    return FakeQueue()


def raw(store: Store, organisation: str, resource: str, resource_id: str) -> dict[str, Any]:
    key = item_key(organisation, resource, resource_id)
    item = store.table.get(key)
    assert item is not None
    return item


def stored_task(store: Store, organisation: str, task_id: str) -> Task:
    task = store.configs.get_task(organisation, task_id)
    assert task is not None
    return task


def lost_test(services: FakeServices, caller: Principal) -> tuple[str, str]:
    """A config whose test job never reached a consumer: (config id, task id)."""
    config = config_cases.create_config(services, caller, {"url": URL})
    task = task_cases.list_tasks(services, caller, {"target": config["id"]})["data"][0]
    return config["id"], task["id"]


def mine(done: Any) -> dict[str, int]:
    return {f"{kind}-{action}": n for (kind, action), n in done.items()}


def test_only_tasks_that_have_not_ended_are_in_the_open_index_and_events_never_are(
    services: FakeServices, caller: Principal, store: Store, clock: FakeClock
) -> None:
    config_id, task_id = lost_test(services, caller)
    pending = raw(store, caller.organisation, "task", task_id)
    assert pending["OpenPK"] in {open_pk(shard) for shard in range(OPEN_SHARDS)}
    created = stored_task(store, caller.organisation, task_id).date_created
    assert {name: pending[name] for name in ("OpenPK", "DueSK")} == open_keys(task_id, created)

    task = stored_task(store, caller.organisation, task_id)
    assert store.configs.end_task(
        replace(task, state=TaskState.FAILED, error="webhook-timeout", date_completed=clock())
    )
    ended = raw(store, caller.organisation, "task", task_id)
    assert "OpenPK" not in ended
    assert "DueSK" not in ended

    event = new_event(caller.organisation, "session", "completed", {"id": "s"}, None, clock())
    store.events.create(replace(event, next_attempt_at=int((START + 3 * HOUR).timestamp())))
    waiting = raw(store, caller.organisation, "event", event.id)
    assert "OpenPK" not in waiting  # its job is always on its way (jobs.event_attempts)
    assert "DueSK" not in waiting
    assert config_id


def test_a_lost_test_is_queued_again_then_ended_and_the_config_keeps_its_state(
    services: FakeServices, caller: Principal, store: Store, lost_queue: FakeQueue, clock: FakeClock
) -> None:
    config_id, task_id = lost_test(services, caller)

    sweep(store, lost_queue, START + 59 * MINUTE, HOUR)  # not overdue yet
    assert not [j for j in lost_queue.jobs if j.get("task") == task_id]

    done = sweep(store, lost_queue, START + 61 * MINUTE, HOUR)
    assert mine(done).get("task-requeued", 0) >= 1
    jobs = [j for j in lost_queue.jobs if j.get("task") == task_id]
    assert jobs == [{"job": "test", "task": task_id, "organisation": caller.organisation, "config": config_id}]
    task = stored_task(store, caller.organisation, task_id)
    assert task.state == "pending"  # it got one more job, not an ending
    assert raw(store, caller.organisation, "task", task_id)["sweeps"] == 1

    sweep(store, lost_queue, START + 110 * MINUTE, HOUR)  # due again from the requeue: not yet
    task = stored_task(store, caller.organisation, task_id)
    assert task.state == "pending"

    sweep(store, lost_queue, START + 122 * MINUTE, HOUR)
    task = stored_task(store, caller.organisation, task_id)
    assert (task.state, task.error) == ("failed", "queue-unavailable")
    assert task.date_completed == START + 122 * MINUTE
    config = store.configs.get(caller.organisation, config_id)
    assert config is not None
    assert config.state == "new"  # re-testable, as when a test job cannot be queued
    assert "OpenPK" not in raw(store, caller.organisation, "task", task_id)
    assert len([j for j in lost_queue.jobs if j.get("task") == task_id]) == 1


def test_the_requeued_job_runs_and_the_sweep_then_leaves_the_task_alone(
    services: FakeServices, caller: Principal, store: Store, lost_queue: FakeQueue, clock: FakeClock
) -> None:
    config_id, task_id = lost_test(services, caller)
    # A consumer started it and crashed for good (its job went to the dead-letter queue).
    task = stored_task(store, caller.organisation, task_id)
    assert store.configs.start_task(task, "6f1c6a9e-2f0c-4e7a-9a51-8d7c1f0e3b21", clock()) is not None

    sweep(store, lost_queue, START + 2 * HOUR, HOUR)
    (job,) = [j for j in lost_queue.jobs if j.get("task") == task_id]
    deliverer = Deliverer(store=store, sender=FakeSender(), queue=lost_queue, clock=clock)
    outcome = handle_job(deliverer, json.dumps(job))

    assert outcome.name == "succeeded"
    config = store.configs.get(caller.organisation, config_id)
    assert config is not None
    assert config.state == "valid"
    sweep(store, lost_queue, START + 5 * HOUR, HOUR)
    task = stored_task(store, caller.organisation, task_id)
    assert task.state == "succeeded"


def dead(job: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    return f"receipt-{len(json.dumps(job))}-{job.get('event', '')}", job


def test_an_event_job_in_the_dead_letter_queue_is_queued_again_then_its_event_ended(
    caller: Principal, store: Store, lost_queue: FakeQueue, clock: FakeClock
) -> None:
    crashed = new_event(caller.organisation, "session", "completed", {"id": "a"}, None, clock())
    store.events.create(crashed)
    now = int(clock().timestamp())
    claimed = store.events.claim_attempt(crashed, 1, None, now, now + 60)
    assert claimed is not None
    job = event_job(crashed.id, caller.organisation, 1, key=None)
    test_job = {"job": "test", "task": "t", "organisation": caller.organisation, "config": "c"}
    letters = FakeDeadLetters([dead(job), dead(test_job), ("unreadable", None)])

    sweep(store, lost_queue, START + 2 * HOUR, HOUR, dead_letters=letters)

    (requeued,) = [j for j in lost_queue.jobs if j.get("job") == "event"]
    assert requeued == {**job, "sweeps": 1}
    assert letters.left() == [test_job, None]  # what is not an event job stays for the operator

    letters.add(dead(requeued))  # it failed for our own reasons again
    sweep(store, lost_queue, START + 3 * HOUR, HOUR, dead_letters=letters)

    ended = store.events.get(caller.organisation, crashed.id)
    assert ended is not None
    assert (ended.state, ended.error, ended.retries) == ("failed", "queue-unavailable", 0)
    assert ended.date_delivered == START + 3 * HOUR
    assert len([j for j in lost_queue.jobs if j.get("job") == "event"]) == 1


def test_a_dead_event_job_whose_event_moved_on_ends_nothing(
    caller: Principal, store: Store, lost_queue: FakeQueue, clock: FakeClock
) -> None:
    delivered = new_event(caller.organisation, "session", "completed", {"id": "b"}, None, clock())
    store.events.create(replace(delivered, state=EventState.DELIVERED, attempts=1, date_delivered=clock()))
    letters = FakeDeadLetters([dead({**event_job(delivered.id, caller.organisation, 1, key=None), "sweeps": 1})])

    sweep(store, lost_queue, START + 2 * HOUR, HOUR, dead_letters=letters)

    stored = store.events.get(caller.organisation, delivered.id)
    assert stored is not None
    assert stored.state == "delivered"
    assert letters.left() == []


def test_an_event_is_never_swept_from_the_open_index(
    caller: Principal, store: Store, lost_queue: FakeQueue, clock: FakeClock
) -> None:
    event = new_event(caller.organisation, "session", "completed", {"id": "c"}, None, clock())
    store.events.create(replace(event, attempts=3, next_attempt_at=int((START + 3 * HOUR).timestamp())))

    sweep(store, lost_queue, START + 30 * HOUR, HOUR)

    assert event.id not in {j.get("event") for j in lost_queue.jobs}
    assert "sweeps" not in raw(store, caller.organisation, "event", event.id)


def test_a_task_that_ends_after_it_was_read_is_not_swept(
    services: FakeServices, caller: Principal, store: Store, clock: FakeClock
) -> None:
    _, task_id = lost_test(services, caller)
    (item,) = [i for i in store.overdue.find(START + 2 * HOUR, 100) if i.work.id == task_id]
    task = stored_task(store, caller.organisation, task_id)
    assert store.configs.end_task(replace(task, state=TaskState.SUCCEEDED, date_completed=clock()))

    assert not store.overdue.mark_swept(item, START + 2 * HOUR)
    ended = stored_task(store, caller.organisation, task_id)
    assert ended.state == "succeeded"
    assert "sweeps" not in raw(store, caller.organisation, "task", task_id)


def test_a_queue_still_down_at_the_requeue_ends_the_task_at_the_next_sweep(
    services: FakeServices, caller: Principal, store: Store
) -> None:
    _, task_id = lost_test(services, caller)
    down = FakeQueue(fail=True)

    first = sweep(store, down, START + 2 * HOUR, HOUR)
    assert "task-requeued" not in mine(first)  # nothing was queued, so nothing is counted as queued
    task = stored_task(store, caller.organisation, task_id)
    assert task.state == "pending"
    assert raw(store, caller.organisation, "task", task_id)["sweeps"] == 1  # its one requeue is spent

    sweep(store, down, START + 3 * HOUR + MINUTE, HOUR)
    task = stored_task(store, caller.organisation, task_id)
    assert (task.state, task.error) == ("failed", "queue-unavailable")


@pytest.fixture
def sweep_function(installed_services: FakeServices, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from webhook_service.settings import reset_settings

    monkeypatch.setenv("SWEEP_AFTER_MINUTES", "60")
    reset_settings()
    yield load_function("sweep")
    reset_settings()


def test_the_sweep_function_reports_and_counts_what_it_did(
    sweep_function: Any,
    installed_services: FakeServices,
    caller: Principal,
    clock: FakeClock,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _, task_id = lost_test(installed_services, caller)
    clock.now = START + 3 * HOUR
    capfd.readouterr()

    summary = sweep_function.handler({"source": "aws.events"}, Context())

    assert summary.get("tasks_requeued", 0) >= 1
    metrics = emf_metrics(json_lines(capfd.readouterr().out))
    requeued = [m for m in metrics if m[0] == "Overdue" and m[1].get("action") == "requeued"]
    assert requeued
    assert requeued[0][1] == {"service": "webhooks", "kind": "task", "action": "requeued"}
    assert task_id in {j.get("task") for j in installed_services.queue.jobs}


# -- a backlog: the time budget, resuming, batched sends -----------------------------------
# Each test below sweeps in a year of its own, before every other test's items, so that only
# its own items are overdue (an item swept is due again from the sweep's `now`).


def lost_tasks(store: Store, organisation: str, created: dt.datetime, count: int) -> list[str]:
    """`count` test tasks whose jobs were lost (each of a config of its own), created a minute
    apart from `created`, oldest first."""
    ids = []
    for n in range(count):
        config = new_config(organisation, URL, created + n * MINUTE)
        task = new_test_task(config, "key", created + n * MINUTE)
        store.configs.create(config, task, open_tests_below=1000)
        ids.append(task.id)
    return ids


def jobs_by_task(queue: FakeQueue) -> Counter[str]:
    return Counter(str(j["task"]) for j in queue.jobs if j.get("job") == "test")


class ScriptedTimeLeft:
    """The invocation's time left at each look, as scripted; the last value repeats."""

    def __init__(self, *seconds: float) -> None:
        self.script = list(seconds)
        self.looks = 0

    def __call__(self) -> float:
        self.looks += 1
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


def test_a_run_out_of_time_stops_between_chunks_and_the_next_run_sweeps_the_rest_once(
    caller: Principal, store: Store, lost_queue: FakeQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep_module, "CHUNK", 10)
    created = dt.datetime(2019, 1, 1, 12, 0, tzinfo=dt.UTC)
    ids = lost_tasks(store, caller.organisation, created, 25)
    now = created + 3 * HOUR

    first = sweep(
        store, lost_queue, now, HOUR, time_left=ScriptedTimeLeft(60, 60, sweep_module.STOP_MARGIN_SECONDS - 1)
    )

    assert mine(first) == {"task-requeued": 20}
    assert set(jobs_by_task(lost_queue)) == set(ids[:20])  # the oldest first
    second = sweep(store, lost_queue, now + MINUTE, HOUR, time_left=ScriptedTimeLeft(60))
    assert mine(second) == {"task-requeued": 5}
    assert jobs_by_task(lost_queue) == Counter(ids)  # every event once: none swept twice, none lost
    assert {raw(store, caller.organisation, "task", i)["sweeps"] for i in ids} == {1}


def test_a_run_keeps_twice_its_slowest_chunk_in_hand_before_the_margin(
    caller: Principal, store: Store, lost_queue: FakeQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep_module, "CHUNK", 5)
    ticks = iter(float(n) for n in range(0, 1000, 3))  # every look at the clock is 3 s later
    monkeypatch.setattr(sweep_module, "monotonic", lambda: next(ticks))
    created = dt.datetime(2018, 1, 1, 12, 0, tzinfo=dt.UTC)
    lost_tasks(store, caller.organisation, created, 12)
    margin = sweep_module.STOP_MARGIN_SECONDS

    # A chunk takes 3 s: with margin + 5 s left the first chunk runs, then margin + twice 3 s is needed.
    done = sweep(store, lost_queue, created + 3 * HOUR, HOUR, time_left=ScriptedTimeLeft(margin + 5))

    assert mine(done) == {"task-requeued": 5}


class CountingSqs:
    """An SQS client that counts the sends it makes, and refuses one entry of a batch."""

    def __init__(self, client: Any, refuse_body_with: str | None = None) -> None:
        self.client = client
        self.refuse_body_with = refuse_body_with
        self.calls: Counter[str] = Counter()

    def send_message(self, **kwargs: Any) -> Any:
        self.calls["send_message"] += 1
        return self.client.send_message(**kwargs)

    def send_message_batch(self, **kwargs: Any) -> Any:
        self.calls["send_message_batch"] += 1
        refused = [e for e in kwargs["Entries"] if self.refuse_body_with and self.refuse_body_with in e["MessageBody"]]
        kept = [e for e in kwargs["Entries"] if e not in refused]
        answer = self.client.send_message_batch(QueueUrl=kwargs["QueueUrl"], Entries=kept) if kept else {}
        failed = [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in refused]
        return {"Successful": answer.get("Successful", []), "Failed": failed}


def test_jobs_go_to_sqs_ten_to_a_request_and_an_entry_sqs_refuses_is_counted_not_queued(
    caller: Principal, store: Store, backing: Backing
) -> None:
    created = dt.datetime(2017, 1, 1, 12, 0, tzinfo=dt.UTC)
    ids = lost_tasks(store, caller.organisation, created, 25)
    sqs = CountingSqs(backing.sqs, refuse_body_with=ids[7])
    queue = JobQueue(backing.queue_url, cast("SQSClient", sqs))  # it forwards every call to moto's client
    drain(backing.sqs, backing.queue_url)

    done = sweep(store, queue, created + 3 * HOUR, HOUR)

    assert sqs.calls == {"send_message_batch": 3}  # 10 + 10 + 5, no message alone
    assert mine(done) == {"task-requeued": 24}
    queued = {json.loads(m)["task"] for m in drain(backing.sqs, backing.queue_url)}
    assert queued == set(ids) - {ids[7]}
    assert raw(store, caller.organisation, "task", ids[7])["sweeps"] == 1  # marked: the next sweep ends it


def drain(sqs: Any, queue_url: str) -> list[str]:
    """Every message body on the queue, deleted as read."""
    bodies: list[str] = []
    for _ in range(100):  # bounded: the tests put a few dozen at most
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        bodies += [m["Body"] for m in messages]
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_the_sweep_function_gives_the_sweep_lambdas_time_left(
    sweep_function: Any, installed_services: FakeServices, caller: Principal, clock: FakeClock
) -> None:
    created = dt.datetime(2016, 1, 1, 12, 0, tzinfo=dt.UTC)
    lost_tasks(installed_services.store, caller.organisation, created, 3)
    clock.now = created + 3 * HOUR

    summary = sweep_function.handler({"source": "aws.events"}, ScriptedContext(seconds=1.0))

    assert summary == {}  # 1 s left is under the margin: nothing started
    assert sweep_function.handler({"source": "aws.events"}, ScriptedContext(seconds=60.0)) == {"tasks_requeued": 3}
