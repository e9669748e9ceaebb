"""Isolation between endpoints (docs/isolation.md): the fast lanes give a receiver 2 s, an
endpoint that does not answer in time is marked slow and its jobs move to the slow lane
(tests and events alike, no attempt used), a quick answer brings it back; an attempt's claim
is a lease, so a job lost mid-attempt is taken over and a copy of a job in flight does
nothing. Storage is moto in-process; the senders are fakes that answer as told."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.support import (
    FakeClock,
    FakeDeliverer,
    FakeQueue,
    FakeSender,
    FakeServices,
    RecordingClient,
    ThreeLaneDeliverer,
    as_dynamodb,
    three_lane_deliverer,
)
from webhook_service import admin
from webhook_service.domain.configs import SLOW_MARK_SECONDS, ConfigState, TaskState
from webhook_service.domain.tenants import Principal
from webhook_service.events import publish
from webhook_service.jobs.dispatch import handle_job
from webhook_service.lanes import Lane
from webhook_service.service import configs as config_cases
from webhook_service.service import events as event_cases
from webhook_service.service import tasks as task_cases
from webhook_service.service import tenants as tenant_cases
from webhook_service.storage.store import Store
from webhook_service.wiring import use_deliverer

URL = "https://receiver.example/hooks/"
NO_ANSWER_IN_TIME = FakeSender(status=None, duration_ms=2000)  # the fast lane's sender gave up


@pytest.fixture
def lanes(store: Store, clock: FakeClock) -> Iterator[ThreeLaneDeliverer]:
    """A deliverer with all three lanes, a fast-lane sender and a full one."""
    made = three_lane_deliverer(store, clock)
    use_deliverer(made)
    yield made
    use_deliverer(None)


def jobs(queue: Any) -> list[dict[str, Any]]:
    return list(queue.jobs)


def take(queue: Any) -> str:
    return json.dumps(queue.jobs.pop(0))


def first_task(services: FakeServices, caller: Principal, config_id: str) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = task_cases.list_tasks(services, caller, {"target": config_id})["data"]
    (task,) = tasks
    return task


def valid_config(services: FakeServices, caller: Principal, store: Store) -> str:
    config = config_cases.create_config(services, caller, {"url": URL})
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    store.configs.replace(replace(stored, state=ConfigState.VALID, open_test=None), stored.version, None)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    return str(config["id"])


def publish_one(store: Store, queue: FakeQueue, caller: Principal) -> str:
    return publish(caller.organisation, "session", "completed", {"id": "s1"}, store=store, queue=queue).id


def mark_slow(store: Store, caller: Principal, config_id: str, clock: FakeClock) -> None:
    config = store.configs.get(caller.organisation, config_id)
    assert config is not None
    store.configs.mark_slow(config, int(clock.now.timestamp()) + SLOW_MARK_SECONDS)


# -- tests ---------------------------------------------------------------------------------


def test_test_with_no_answer_in_the_fast_lane_moves_to_the_slow_lane_and_marks_the_endpoint(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store, queue: FakeQueue
) -> None:
    lanes.fast_sender = NO_ANSWER_IN_TIME
    config = config_cases.create_config(services, caller, {"url": URL})

    outcome = handle_job(lanes, take(queue), Lane.TESTS)

    task = first_task(services, caller, config["id"])
    stored = store.configs.get(caller.organisation, config["id"])
    assert outcome.name == "slow-lane"
    assert (task["state"], task["result"]) == ("processing", None)  # no outcome yet
    assert stored is not None
    assert stored.state == "new"
    assert stored.is_slow(lanes.clock())
    assert jobs(lanes.slow_queue) == [
        {"job": "test", "task": task["id"], "organisation": caller.organisation, "config": config["id"]}
    ]
    assert lanes.sender.sent == []


def test_test_moved_to_the_slow_lane_gets_the_whole_timeout_and_sends_the_same_event(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store, queue: FakeQueue
) -> None:
    lanes.fast_sender = FakeSender(status=None, duration_ms=2000)
    lanes.sender = FakeSender(status=200, duration_ms=6000)
    config = config_cases.create_config(services, caller, {"url": URL})
    handle_job(lanes, take(queue), Lane.TESTS)

    outcome = handle_job(lanes, take(lanes.slow_queue), Lane.SLOW)

    task = first_task(services, caller, config["id"])
    (fast_try,) = lanes.fast_sender.sent
    (slow_try,) = lanes.sender.sent
    assert outcome.name == "succeeded"
    assert (task["state"], task["result"]["duration_ms"]) == ("succeeded", 6000)
    assert config_cases.get_config(services, caller, config["id"])["state"] == "valid"
    assert fast_try[2]["webhook-id"] == slow_try[2]["webhook-id"]  # one event, sent again


def test_test_of_an_endpoint_marked_slow_is_queued_in_the_slow_lane(
    services: FakeServices, caller: Principal, store: Store, clock: FakeClock, queue: FakeQueue
) -> None:
    slow, tests = FakeQueue(), FakeQueue()
    services.test_queue, services.slow_queue = tests, slow
    config = config_cases.create_config(services, caller, {"url": URL})
    mark_slow(store, caller, config["id"], clock)
    first = store.configs.get_task(caller.organisation, first_task(services, caller, config["id"])["id"])
    assert first is not None
    store.configs.end_task(replace(first, state=TaskState.FAILED, error="webhook-timeout", date_completed=clock()))

    task = config_cases.queue_config_test(services, caller, config["id"], {})

    assert [j["task"] for j in tests.jobs] == [first.id]
    assert [j["task"] for j in slow.jobs] == [task["id"]]
    assert queue.jobs == []


def test_fast_lane_test_of_an_endpoint_marked_slow_moves_unsent(
    services: FakeServices,
    caller: Principal,
    lanes: ThreeLaneDeliverer,
    store: Store,
    clock: FakeClock,
    queue: FakeQueue,
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    mark_slow(store, caller, config["id"], clock)

    outcome = handle_job(lanes, take(queue), Lane.TESTS)

    assert outcome.name == "slow-lane"
    assert first_task(services, caller, config["id"])["state"] == "pending"
    assert len(jobs(lanes.slow_queue)) == 1
    assert lanes.fast_sender.sent == []


def test_quick_answer_in_the_slow_lane_clears_the_mark(
    services: FakeServices,
    caller: Principal,
    lanes: ThreeLaneDeliverer,
    store: Store,
    clock: FakeClock,
    queue: FakeQueue,
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    mark_slow(store, caller, config["id"], clock)

    outcome = handle_job(lanes, take(queue), Lane.SLOW)

    stored = store.configs.get(caller.organisation, config["id"])
    assert outcome.name == "succeeded"
    assert stored is not None
    assert stored.slow_until is None


def test_slow_answer_in_the_slow_lane_renews_the_mark(
    services: FakeServices,
    caller: Principal,
    lanes: ThreeLaneDeliverer,
    store: Store,
    clock: FakeClock,
    queue: FakeQueue,
) -> None:
    lanes.sender = FakeSender(status=200, duration_ms=9000)
    config = config_cases.create_config(services, caller, {"url": URL})
    mark_slow(store, caller, config["id"], clock)
    marked = store.configs.get(caller.organisation, config["id"])
    assert marked is not None
    clock.now += dt.timedelta(seconds=301)  # past half the mark

    handle_job(lanes, take(queue), Lane.SLOW)

    renewed = store.configs.get(caller.organisation, config["id"])
    assert renewed is not None
    assert renewed.slow_until is not None
    assert marked.slow_until is not None
    assert renewed.slow_until >= marked.slow_until + 301


def test_without_a_slow_lane_nothing_is_cut_or_marked(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer, store: Store, queue: FakeQueue
) -> None:
    deliverer.sender = FakeSender(status=None, duration_ms=15000)
    config = config_cases.create_config(services, caller, {"url": URL})

    outcome = handle_job(deliverer, take(queue), Lane.TESTS)

    stored = store.configs.get(caller.organisation, config["id"])
    assert outcome.name == "failed"
    assert stored is not None
    assert (stored.state, stored.slow_until) == ("invalid", None)


# -- events --------------------------------------------------------------------------------


def test_event_with_no_answer_in_the_fast_lane_gives_its_attempt_back_and_moves_to_the_slow_lane(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    lanes.fast_sender = NO_ANSWER_IN_TIME
    config_id = valid_config(services, caller, store)
    event_id = publish_one(store, lanes.queue, caller)

    outcome = handle_job(lanes, take(lanes.queue), Lane.EVENTS)

    event = store.events.get(caller.organisation, event_id)
    assert outcome.name == "slow-lane"
    assert event is not None
    assert (event.state, event.attempts, event.claimed_until) == ("pending", 0, None)
    assert jobs(lanes.slow_queue) == [
        {"job": "event", "event": event_id, "organisation": caller.organisation, "attempt": 1, "key": None}
    ]
    stored = store.configs.get(caller.organisation, config_id)
    assert stored is not None
    assert stored.is_slow(lanes.clock())


def test_event_moved_to_the_slow_lane_is_delivered_there_as_its_first_attempt(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    lanes.fast_sender = NO_ANSWER_IN_TIME
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes.queue, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)

    outcome = handle_job(lanes, take(lanes.slow_queue), Lane.SLOW)

    event = event_cases.get_event(services, caller, event_id)
    assert outcome.name == "delivered"
    assert (event["state"], event["retries"]) == ("delivered", 0)


def test_fast_lane_event_for_an_endpoint_marked_slow_moves_unsent_without_using_an_attempt(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store, clock: FakeClock
) -> None:
    config_id = valid_config(services, caller, store)
    mark_slow(store, caller, config_id, clock)
    event_id = publish_one(store, lanes.queue, caller)

    outcome = handle_job(lanes, take(lanes.queue), Lane.EVENTS)

    event = store.events.get(caller.organisation, event_id)
    assert outcome.name == "slow-lane"
    assert event is not None
    assert event.attempts == 0
    assert lanes.fast_sender.sent == []
    assert len(jobs(lanes.slow_queue)) == 1


def test_event_for_an_unconfigured_target_fails_in_any_lane_without_moving(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    event_id = publish_one(store, lanes.queue, caller)

    outcome = handle_job(lanes, take(lanes.queue), Lane.EVENTS)

    assert outcome.name == "unconfigured"
    assert event_cases.get_event(services, caller, event_id)["error"] == "unconfigured"
    assert jobs(lanes.slow_queue) == []


# -- claims are leases ---------------------------------------------------------------------


def test_copy_of_a_job_whose_attempt_is_in_flight_neither_sends_nor_queues_the_next_attempt(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store, clock: FakeClock
) -> None:
    lanes.fast_sender = FakeSender(status=500)
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes.queue, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)  # attempt 1 fails; attempt 2 is queued
    (second,) = jobs(lanes.queue)
    event = store.events.get(caller.organisation, event_id)
    assert event is not None
    clock.now += dt.timedelta(minutes=2)
    now = int(clock.now.timestamp())
    assert store.events.claim_attempt(event, 2, event.webhook_config, now, now + 30) is not None  # in flight
    lanes.queue.jobs.clear()

    outcome = handle_job(lanes, json.dumps(second), Lane.EVENTS)

    # It waits a little, in case the claim is given back (a copy gives up after a few waits).
    assert outcome.name == "waiting"
    assert [(j["attempt"], j["waited"]) for j in jobs(lanes.queue)] == [(2, 1)]  # itself; no attempt 3
    assert len(lanes.fast_sender.sent) == 1


def test_attempt_whose_claim_ran_out_is_taken_over_by_the_next_copy_of_its_job(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store, clock: FakeClock
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes.queue, caller)
    job = take(lanes.queue)
    event = store.events.get(caller.organisation, event_id)
    assert event is not None
    now = int(clock.now.timestamp())
    assert store.events.claim_attempt(event, 1, event.webhook_config, now, now + 30) is not None  # then lost
    clock.now += dt.timedelta(seconds=31)

    outcome = handle_job(lanes, job, Lane.EVENTS)

    assert outcome.name == "delivered"
    assert event_cases.get_event(services, caller, event_id)["retries"] == 0


def test_claim_lasts_no_longer_than_the_invocation_that_made_it(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes.queue, caller)
    seen: list[tuple[int | None, float]] = []

    def look() -> None:
        stored = store.events.get(caller.organisation, event_id)
        assert stored is not None
        seen.append((stored.claimed_until, lanes.clock().timestamp()))

    lanes.fast_sender = FakeSender(before=look)

    handle_job(lanes, take(lanes.queue), Lane.EVENTS, time_left=lambda: 12.0)

    ((claimed_until, now),) = seen
    assert claimed_until is not None
    assert now < claimed_until <= now + 13
    stored = store.events.get(caller.organisation, event_id)
    assert stored is not None
    assert (stored.state, stored.claimed_until) == ("delivered", None)  # recorded: the claim is gone


def test_slow_answer_with_most_of_the_mark_left_writes_nothing(
    services: FakeServices,
    caller: Principal,
    lanes: ThreeLaneDeliverer,
    store: Store,
    clock: FakeClock,
    queue: FakeQueue,
) -> None:
    lanes.sender = FakeSender(status=200, duration_ms=9000)
    config = config_cases.create_config(services, caller, {"url": URL})
    mark_slow(store, caller, config["id"], clock)
    recording = RecordingClient(store.table.client)
    lanes.store = Store(store.table.name, as_dynamodb(recording))

    handle_job(lanes, take(queue), Lane.SLOW)

    assert recording.calls == ["batch_get_item", "update_item", "transact_write_items"]  # no mark written


# -- storage requests per job ----------------------------------------------------------------


def test_event_job_naming_its_key_reads_the_event_and_its_routing_in_one_request_then_the_event_alone(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    publish_one(store, lanes.queue, caller)
    publish_one(store, lanes.queue, caller)
    recording = RecordingClient(store.table.client)
    lanes.store = Store(store.table.name, as_dynamodb(recording))
    # a new store: a process that has routed nothing yet

    cold = handle_job(lanes, take(lanes.queue), Lane.EVENTS)
    cold_calls, recording.calls = recording.calls, []
    warm = handle_job(lanes, take(lanes.queue), Lane.EVENTS)

    assert (cold.name, warm.name) == ("delivered", "delivered")
    # Cold: the event with its key and organisation, then the config they name. Warm: the
    # event alone (its routing is kept, storage.routing). The claim is one update of the
    # event's state item, and the outcome with its attempt another.
    assert cold_calls == ["batch_get_item", "batch_get_item", "update_item", "update_item"]
    assert recording.calls == ["batch_get_item", "update_item", "update_item"]


def test_event_job_from_before_jobs_named_their_key_is_still_routed(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes.queue, caller)
    job = lanes.queue.jobs.pop(0)
    del job["key"]

    outcome = handle_job(lanes, json.dumps(job), Lane.EVENTS)

    assert outcome.name == "delivered"
    assert event_cases.get_event(services, caller, event_id)["state"] == "delivered"


def test_publish_reads_the_organisation_and_the_key_in_one_request(store: Store, organisation: str) -> None:
    key = admin.create_key(store.organisations, organisation)[0]["id"]
    recording = RecordingClient(store.table.client)
    queue = FakeQueue()

    publish(
        organisation,
        "session",
        "completed",
        {},
        key=key,
        store=Store(store.table.name, as_dynamodb(recording)),
        queue=queue,
    )

    assert recording.calls == ["batch_get_item", "put_item", "put_item"]  # what was published, then its state
    assert queue.jobs[0]["key"] == key
