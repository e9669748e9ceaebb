"""The consumer watches the invocation's remaining time (docs/isolation.md): a job starts
only if the time left covers its worst case, the others go back to their lane unstarted, and
the batch answers before the invocation's end whatever its jobs do. No job is lost (each one
ended, was handed back, or is reported for redelivery) and none is stranded (nothing claimed
is left unrecorded beyond the invocation's end)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from devstack.aws import serial
from tests.unit.support import (
    CountdownContext,
    FakeClock,
    FakeQueue,
    FakeSender,
    FakeServices,
    ScriptedContext,
    ThreeLaneDeliverer,
    emf_metrics,
    json_lines,
    sqs_event,
    three_lane_deliverer,
)
from webhook_service import consumer
from webhook_service.consumer import BatchFailedError, handle_batch
from webhook_service.domain.configs import ConfigState
from webhook_service.domain.tenants import Principal
from webhook_service.events import publish
from webhook_service.lanes import Lane
from webhook_service.service import configs as config_cases
from webhook_service.service import tenants as tenant_cases
from webhook_service.storage.store import Store
from webhook_service.wiring import use_deliverer

URL = "https://receiver.example/hooks/"


@pytest.fixture
def lanes(store: Store, clock: FakeClock) -> Iterator[ThreeLaneDeliverer]:
    # The consumer runs a batch's jobs on threads; moto's in-process table is not safe for
    # concurrent transactions, so the jobs' store makes its calls one at a time.
    one_at_a_time = Store(store.table.name, serial(store.table.client))
    made = three_lane_deliverer(one_at_a_time, clock, storage_reserve=5.0)
    use_deliverer(made)
    yield made
    use_deliverer(None)


@pytest.fixture
def one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The batch's jobs run one after another, so that which ones find time left is known."""
    executor = ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(consumer, "_executor", executor)
    yield
    executor.shutdown(wait=True)


def routed_events(services: FakeServices, caller: Principal, store: Store, count: int) -> list[str]:
    config = config_cases.create_config(services, caller, {"url": URL})
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    store.configs.replace(replace(stored, state=ConfigState.VALID, open_test=None), stored.version, None)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    queue = FakeQueue()
    for n in range(count):
        publish(caller.organisation, "session", "completed", {"n": n}, store=store, queue=queue)
    return [json.dumps(job) for job in queue.jobs]


def test_jobs_the_remaining_time_does_not_cover_go_back_to_their_lane_unstarted(
    services: FakeServices, caller: Principal, store: Store, lanes: ThreeLaneDeliverer, one_at_a_time: None
) -> None:
    context = ScriptedContext(seconds=25.0)
    lanes.fast_sender = FakeSender(before=lambda: context.use(9.0))
    bodies = routed_events(services, caller, store, 4)

    response = handle_batch(sqs_event(*bodies), context)

    # A fast-lane job needs 2 s + 5 s of storage + 1 s to answer: 25 s and 16 s are enough,
    # 7 s is not.
    events = [store.events.get(caller.organisation, json.loads(b)["event"]) for b in bodies]
    assert response == {"batchItemFailures": []}
    assert [(e.state, e.attempts, e.claimed_until) for e in events if e] == [
        ("delivered", 1, None),
        ("delivered", 1, None),
        ("pending", 0, None),
        ("pending", 0, None),
    ]
    assert [json.dumps(j) for j in lanes.queue.jobs] == bodies[2:]


def test_job_is_handed_back_to_the_lane_it_came_from(
    services: FakeServices, caller: Principal, store: Store, lanes: ThreeLaneDeliverer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        consumer,
        "_source_lanes",
        lambda: {Lane.EVENTS: "https://q/events", Lane.TESTS: "https://q/tests", Lane.SLOW: "https://q/slow"},
    )
    (body,) = routed_events(services, caller, store, 1)
    event = sqs_event(body)
    event["Records"][0]["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:slow"

    response = handle_batch(event, ScriptedContext(seconds=15.0))  # the slow lane needs 15 + 5 + 1 s

    assert response == {"batchItemFailures": []}
    assert [json.dumps(j) for j in lanes.slow_queue.jobs] == [body]
    assert lanes.queue.jobs == []


def test_job_that_cannot_be_handed_back_is_reported_for_redelivery(
    services: FakeServices, caller: Principal, store: Store, lanes: ThreeLaneDeliverer
) -> None:
    lanes.queue = FakeQueue(fail=True)
    bodies = routed_events(services, caller, store, 2)

    # Every job failed: the invocation fails, so Lambda returns the whole batch to the queue.
    with pytest.raises(BatchFailedError):
        handle_batch(sqs_event(*bodies), ScriptedContext(seconds=3.0))


def test_every_job_that_failed_counts_a_failure_of_the_function_for_its_rollback_alarm(
    services: FakeServices,
    caller: Principal,
    store: Store,
    lanes: ThreeLaneDeliverer,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ricloud-webhooks-dev-DeliverFunction-X1")
    lanes.queue = FakeQueue(fail=True)
    bodies = routed_events(services, caller, store, 2)
    capfd.readouterr()

    with pytest.raises(BatchFailedError):
        handle_batch(sqs_event(*bodies), ScriptedContext(seconds=3.0))

    counted = [d for name, d, _ in emf_metrics(json_lines(capfd.readouterr().out)) if name == "Failures"]
    assert counted == [{"service": "webhooks", "function": "ricloud-webhooks-dev-DeliverFunction-X1"}] * 2


def test_batch_answers_before_the_invocations_end_and_reports_the_job_still_running(
    services: FakeServices, caller: Principal, store: Store, lanes: ThreeLaneDeliverer, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    hold = [True]

    def maybe_hang() -> None:
        if hold.pop() if hold else False:
            release.wait(timeout=30)

    lanes.fast_timeout, lanes.storage_reserve = 0.2, 0.3  # a job needs 0.5 s + 1 s to answer
    lanes.fast_sender = FakeSender(before=maybe_hang)
    bodies = routed_events(services, caller, store, 2)
    context = CountdownContext(seconds=4.0)

    response = handle_batch(sqs_event(*bodies), context)

    left_at_answer = context.get_remaining_time_in_millis()
    assert left_at_answer > 0  # answered before Lambda would have stopped it
    (failure,) = response["batchItemFailures"]
    hung = json.loads(bodies[int(failure["itemIdentifier"][1:])])["event"]
    stuck = store.events.get(caller.organisation, hung)
    assert stuck is not None
    # Its attempt is claimed only until this invocation's end: the copy SQS delivers again
    # (after the visibility timeout) takes it over, so it is not stranded.
    assert stuck.claimed_until is not None
    assert stuck.claimed_until <= lanes.clock().timestamp() + 4 + 1
    release.set()
    # Let the released job finish here: its writes must not land in the next test's table.
    for _ in range(200):  # bounded: 10 s
        ended = store.events.get(caller.organisation, hung)
        if ended is not None and ended.state != "pending":
            break
        time.sleep(0.05)


def test_without_a_lambda_context_every_job_runs(
    services: FakeServices, caller: Principal, store: Store, lanes: ThreeLaneDeliverer
) -> None:
    bodies = routed_events(services, caller, store, 3)

    response = handle_batch(sqs_event(*bodies), None)

    assert response == {"batchItemFailures": []}
    stored = [store.events.get(caller.organisation, json.loads(b)["event"]) for b in bodies]
    states = {event.state if event is not None else None for event in stored}  # a lost event is None
    assert states == {"delivered"}


def test_handed_back_jobs_are_counted_in_the_deliveries_metric(
    services: FakeServices,
    caller: Principal,
    store: Store,
    lanes: ThreeLaneDeliverer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.unit.support import emf_metrics, json_lines

    bodies = routed_events(services, caller, store, 2)
    capsys.readouterr()

    handle_batch(sqs_event(*bodies), ScriptedContext(seconds=5.0))

    metrics: list[tuple[str, dict[str, str], Any]] = emf_metrics(json_lines(capsys.readouterr().out))
    assert ("Deliveries", {"service": "webhooks", "kind": "event", "outcome": "handed-back"}, [2.0]) in [
        (name, dims, value) for name, dims, value in metrics
    ]
