"""A config's `rate_limit`: validated and kept on the config, and every delivery to it (events
and tests) paced so that its receiver never gets more than that many in any second, waiting
without being an attempt (domain.pacing, storage.pacing, jobs.pacing)."""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import json
import random
from dataclasses import replace
from typing import Any

import pytest

from tests.support.windows import most_in_any_window
from tests.unit.support import FakeClock, FakeQueue, FakeSender, FakeServices, ThreeLaneDeliverer, three_lane_deliverer
from webhook_service.domain.configs import ConfigState
from webhook_service.domain.pacing import (
    LATE_AT_MOST_US,
    LEAD_AT_MOST_SECONDS,
    LONGEST_HOP_SECONDS,
    SHARD_RATE,
    SPACING_SLACK,
    WAIT_IN_INVOCATION_SECONDS,
    Lead,
    Slot,
    Turn,
    decide,
    interval_us,
    shard_of,
    shards,
    slot_of,
)
from webhook_service.domain.tenants import Principal
from webhook_service.errors import InvalidParameterError
from webhook_service.events import publish
from webhook_service.jobs.dispatch import handle_job
from webhook_service.lanes import Lane
from webhook_service.service import configs as config_cases
from webhook_service.service import events as event_cases
from webhook_service.service import tenants as tenant_cases
from webhook_service.storage.keys import pace_key
from webhook_service.storage.store import Store

URL = "https://receiver.example/hooks/"
SECOND_US = 1_000_000


# -- the arithmetic ------------------------------------------------------------------------


def test_slots_are_spaced_a_little_wider_than_one_over_the_rate() -> None:
    assert interval_us(5) == 210_000
    assert interval_us(1) == 1_050_000
    assert (shards(SHARD_RATE), shards(SHARD_RATE + 1), shards(10_000)) == (1, 2, 25)
    assert interval_us(10_000) == 2_625  # 25 items, each paced at 400 a second
    assert {shard_of(f"event-{n}", 10_000) for n in range(2_000)} == set(range(25))
    assert shard_of("same", 900) == shard_of("same", 900)


@pytest.mark.parametrize(
    ("ahead_seconds", "turn", "seconds"),
    [
        (0.0, Turn.SEND, 0.0),
        (1.5, Turn.SEND, 1.5),
        (WAIT_IN_INVOCATION_SECONDS, Turn.SEND, WAIT_IN_INVOCATION_SECONDS),
        (2.5, Turn.COME_BACK, 1.0),  # never less than a second: SQS delays are whole seconds
        (10.0, Turn.COME_BACK, 8.0),  # back two seconds before: waited for there
        (10.3, Turn.COME_BACK, 9.0),  # back 1.3 seconds before
        (5_000.0, Turn.COME_BACK, LONGEST_HOP_SECONDS),
        (-0.02, Turn.SEND, 0.0),  # a little late: sent at once
        (-0.031, Turn.RETAKE, 0.0),  # later than LATE_AT_MOST: a new slot
    ],
)
def test_what_a_delivery_holding_a_slot_does(ahead_seconds: float, turn: Turn, seconds: float) -> None:
    now = 1_800_000_000 * SECOND_US
    decision = decide(now + round(ahead_seconds * SECOND_US), now)
    assert decision.turn == turn
    assert decision.seconds == pytest.approx(seconds)


def test_the_lead_grows_by_each_lateness_and_shrinks_by_a_tenth_of_each_wait() -> None:
    lead = Lead()
    lead.sent(0.04)
    lead.sent(0.02)
    assert lead.seconds == pytest.approx(0.06)
    lead.sent(-0.2)  # waited 200 ms: 20 ms less lead
    assert lead.seconds == pytest.approx(0.04)
    lead.sent(-5.0)
    assert lead.seconds == 0.0
    for _ in range(100):
        lead.sent(0.5)
    assert lead.seconds == LEAD_AT_MOST_SECONDS


def test_a_process_whose_sends_were_late_takes_its_next_free_slot_that_far_ahead(
    caller: Principal, store: Store, clock: FakeClock, paced: tuple[ThreeLaneDeliverer, str]
) -> None:
    lanes, _ = paced
    lanes.pace_lead.seconds = 0.5
    waits: list[float] = []
    lanes.sleep = waits.append
    publish(caller.organisation, "session", "completed", {}, store=store, queue=lanes.queue)

    assert handle_job(lanes, json.dumps(lanes.queue.jobs.pop(0)), Lane.EVENTS).name == "delivered"
    (waited,) = waits
    assert 0.45 < waited <= 0.5  # the slot was taken half a second ahead (less the clock's ticks)
    assert lanes.pace_lead.seconds < 0.5  # and waiting for it shortened the lead


@pytest.mark.parametrize("rate", [1, 5, 7, 100, 401, 1_000, 10_000])
def test_sends_late_by_up_to_the_tolerance_never_put_more_than_the_rate_in_any_second(rate: int) -> None:
    """Every item of a config hands out its slots back to back (a backlog), from its own
    starting point; each delivery is sent up to LATE_AT_MOST (plus the network's jitter,
    up to the rest of the slack) after its slot, at random. No second holds more than
    `rate` of them."""
    rng = random.Random(rate)
    jitter = SPACING_SLACK - LATE_AT_MOST_US / SECOND_US
    sends = []
    for _ in range(shards(rate)):
        start = rng.uniform(0, 1)
        count = 3 * rate // shards(rate) + 2  # three seconds' worth on each item
        for n in range(count):
            slot = start + n * interval_us(rate) / SECOND_US
            sends.append(slot + rng.uniform(0, LATE_AT_MOST_US / SECOND_US) + rng.uniform(0, jitter))
    assert most_in_any_window(sends) <= rate
    # ...and the slack costs at most a twentieth of the rate.
    assert most_in_any_window(sends) >= rate * 0.9


def test_a_slot_goes_in_a_job_and_comes_back_out() -> None:
    slot = Slot("c", 5, 1_800_000_000_123_456)
    assert slot_of(json.loads(json.dumps(slot.message()))) == slot
    assert slot_of(None) is None
    assert slot_of({"config": "c", "rate": True, "at": 1}) is None  # not a slot this code wrote
    assert slot_of({"config": "c", "rate": 5, "at": "1"}) is None
    assert slot.holds_for("c", 5)
    assert not slot.holds_for("c", 6)  # the rate changed since it was taken: a new one
    assert not slot.holds_for("d", 5)


# -- the slots, in the table ---------------------------------------------------------------


def test_slots_are_handed_out_back_to_back_while_busy_and_from_now_once_idle(store: Store, organisation: str) -> None:
    now = 1_800_000_000 * SECOND_US
    step = interval_us(5)
    take = store.pacing.take_slot

    assert [take(organisation, "c", 0, step, now) for _ in range(3)] == [now, now + step, now + 2 * step]
    assert take(organisation, "c", 0, step, now + step) == now + 3 * step  # still busy: the next free one
    later = now + 10 * SECOND_US
    assert take(organisation, "c", 0, step, later) == later  # idle again: now
    assert take(organisation, "c", 1, step, now) == now  # another item of the config: its own slots
    assert take(organisation, "d", 0, step, now) == now  # another config


def test_a_pacing_item_expires_after_the_longest_wait_a_job_can_have(store: Store, organisation: str) -> None:
    now = 1_800_000_000 * SECOND_US
    store.pacing.take_slot(organisation, "c", 0, interval_us(5), now)
    item = store.table.get(pace_key(organisation, "c", 0))
    assert item is not None
    assert item["expires_at"] - now // SECOND_US > 14 * 86_400  # SQS keeps a message 14 days


# -- the config's field ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, 10_001, -1, "5", 5.5, True, [5], {}])
def test_a_rate_limit_that_is_not_a_whole_number_from_1_to_10000_is_refused(
    services: FakeServices, caller: Principal, store: Store, bad: Any
) -> None:
    with pytest.raises(InvalidParameterError) as refused:
        config_cases.create_config(services, caller, {"url": URL, "rate_limit": bad})
    assert set(refused.value.params or {}) == {"rate_limit"}
    assert store.lists.configs(caller.organisation, _everything()).items == []  # nothing written


def test_a_config_keeps_its_rate_limit_and_an_update_of_it_alone_neither_tests_nor_moves_the_version(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    created = config_cases.create_config(services, caller, {"url": URL, "rate_limit": 5})
    assert created["rate_limit"] == 5
    assert config_cases.create_config(services, caller, {"url": URL})["rate_limit"] is None
    tests_queued = len(queue.jobs)

    changed = config_cases.update_config(services, caller, created["id"], {"rate_limit": 10_000})
    cleared = config_cases.update_config(services, caller, created["id"], {"rate_limit": None})

    assert (changed["rate_limit"], cleared["rate_limit"]) == (10_000, None)
    assert len(queue.jobs) == tests_queued  # nothing tested
    stored = config_cases.get_config(services, caller, created["id"])
    assert stored["rate_limit"] is None
    listed = config_cases.list_configs(services, caller, {})["data"]
    assert {c["id"]: c["rate_limit"] for c in listed}[created["id"]] is None
    retest = config_cases.update_config(services, caller, created["id"], {"url": URL + "v2", "rate_limit": 3})
    assert retest["rate_limit"] == 3
    assert len(queue.jobs) == tests_queued + 1  # the url: tested


def _everything() -> Any:
    from webhook_service.validation import parse_list_query

    return parse_list_query({}, {})


# -- deliveries, paced ---------------------------------------------------------------------


class Harness:
    """Runs the events lane's jobs as Lambda would, at the moments they become visible, on a
    fake clock. Jobs of one moment run as at once (each sees the clock as it was when it
    began): a job's wait for its slot is recorded, not slept, and the sender notes when it
    was called: the moment the job began, plus the wait."""

    def __init__(self, lanes: ThreeLaneDeliverer, clock: FakeClock) -> None:
        self.lanes, self.clock = lanes, clock
        self.waited = 0.0
        self.sent_at: list[float] = []
        self.seen = 0  # jobs of lanes.queue.sent already scheduled
        self.due: list[tuple[float, int, dict[str, Any]]] = []
        self.order = itertools.count()  # jobs visible at one moment run in the order they were sent
        lanes.sleep = self._sleep
        lanes.fast_sender = FakeSender(before=self._note_send)

    def _sleep(self, seconds: float) -> None:
        self.waited += seconds

    def _note_send(self) -> None:
        self.sent_at.append(self.clock.now.timestamp() + self.waited)

    def _schedule(self) -> None:
        for job, delay in self.lanes.queue.sent[self.seen :]:
            heapq.heappush(self.due, (self.clock.now.timestamp() + delay, next(self.order), job))
        self.seen = len(self.lanes.queue.sent)

    def run(self, most_jobs: int) -> dict[str, int]:
        outcomes: dict[str, int] = {}
        self._schedule()
        for _ in range(most_jobs):
            if not self.due:
                return outcomes
            at, _, job = heapq.heappop(self.due)
            began = dt.datetime.fromtimestamp(at, dt.UTC)
            self.clock.now = max(self.clock.now, began)
            moment, self.waited = self.clock.now, 0.0
            outcome = handle_job(self.lanes, json.dumps(job), Lane.EVENTS)
            outcomes[outcome.name] = outcomes.get(outcome.name, 0) + 1
            self.clock.now = moment  # the next job of this moment began with this one
            self._schedule()
        raise AssertionError(f"more than {most_jobs} jobs")


@pytest.fixture
def paced(services: FakeServices, caller: Principal, store: Store, clock: FakeClock) -> tuple[ThreeLaneDeliverer, str]:
    """A deliverer on three fake lanes, and the organisation's default config: valid, with
    `rate_limit` 5."""
    lanes = three_lane_deliverer(store, clock)
    config = config_cases.create_config(services, caller, {"url": URL, "rate_limit": 5})
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    store.configs.replace(replace(stored, state=ConfigState.VALID, open_test=None), stored.version, None)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    return lanes, config["id"]


def test_fifty_events_at_once_reach_the_receiver_at_most_five_a_second_each_once_without_a_counted_wait(
    services: FakeServices, caller: Principal, store: Store, clock: FakeClock, paced: tuple[ThreeLaneDeliverer, str]
) -> None:
    lanes, _ = paced
    harness = Harness(lanes, clock)
    ids = [
        publish(caller.organisation, "session", "completed", {"n": n}, store=store, queue=lanes.queue).id
        for n in range(50)
    ]

    outcomes = harness.run(most_jobs=400)

    assert outcomes["delivered"] == 50
    assert outcomes.get("paced", 0) > 0  # most came back for their slot
    assert len(harness.sent_at) == 50
    assert most_in_any_window(harness.sent_at) <= 5
    assert (
        max(harness.sent_at) - min(harness.sent_at) >= 49 * interval_us(5) / SECOND_US - LATE_AT_MOST_US / SECOND_US
    )  # a send may be that late
    for event_id in ids:
        event = event_cases.get_event(services, caller, event_id)
        assert (event["state"], event["retries"]) == ("delivered", 0)
        attempts = event_cases.list_attempts(services, caller, event_id, {})["data"]
        assert len(attempts) == 1  # waiting made none


def test_a_job_that_comes_back_too_late_for_its_slot_takes_another(
    caller: Principal, store: Store, clock: FakeClock, paced: tuple[ThreeLaneDeliverer, str]
) -> None:
    lanes, config_id = paced
    for _ in range(50):  # the config's slots taken ten seconds ahead
        store.pacing.take_slot(caller.organisation, config_id, 0, interval_us(5), int(clock().timestamp() * SECOND_US))
    publish(caller.organisation, "session", "completed", {}, store=store, queue=lanes.queue)
    handle_job(lanes, json.dumps(lanes.queue.jobs.pop(0)), Lane.EVENTS)
    (job, delay), held = lanes.queue.sent[-1], slot_of(lanes.queue.sent[-1][0]["slot"])
    assert held is not None
    assert delay >= 1
    clock.now = dt.datetime.fromtimestamp(held.at_us / SECOND_US + 5, dt.UTC)  # five seconds late

    assert handle_job(lanes, json.dumps(job), Lane.EVENTS).name == "delivered"  # the slot of now, free
    assert len(lanes.fast_sender.sent) == 1


def test_a_slot_missed_while_claiming_is_come_back_for_unclaimed_when_the_next_is_far(
    caller: Principal,
    store: Store,
    clock: FakeClock,
    paced: tuple[ThreeLaneDeliverer, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The slot is waited for right before the send: a claim that took longer than the
    lateness allowed must not send late into the next deliveries' slots."""
    lanes, config_id = paced
    publish(caller.organisation, "session", "completed", {}, store=store, queue=lanes.queue)
    job = lanes.queue.jobs.pop(0)
    claim = store.events.claim_attempt

    def slow_claim(*args: Any, **kwargs: Any) -> Any:
        # Meanwhile a second passed and other deliveries took the next ten seconds of slots.
        for _ in range(50):
            now_us = int(clock().timestamp() * SECOND_US)
            store.pacing.take_slot(caller.organisation, config_id, 0, interval_us(5), now_us)
        clock.now += dt.timedelta(seconds=1)
        return claim(*args, **kwargs)

    monkeypatch.setattr(store.events, "claim_attempt", slow_claim)
    assert handle_job(lanes, json.dumps(job), Lane.EVENTS).name == "paced"
    monkeypatch.setattr(store.events, "claim_attempt", claim)

    (back, delay) = lanes.queue.sent[-1]
    held = slot_of(back["slot"])
    assert held is not None
    assert held.at_us > int(clock.now.timestamp() * SECOND_US) + 8 * SECOND_US  # after the ten seconds taken
    assert 1 <= delay <= 15
    assert lanes.fast_sender.sent == []
    clock.now = dt.datetime.fromtimestamp(held.at_us / SECOND_US, dt.UTC)
    assert handle_job(lanes, json.dumps(back), Lane.EVENTS).name == "delivered"  # the claim was given back
    assert len(lanes.fast_sender.sent) == 1
    event = store.events.get(caller.organisation, job["event"])
    assert event is not None
    assert (event.state, event.retries) == ("delivered", 0)


def test_a_config_test_is_paced_too_and_stays_pending_while_it_waits(
    services: FakeServices, caller: Principal, store: Store, clock: FakeClock, queue: FakeQueue
) -> None:
    lanes = three_lane_deliverer(store, clock)
    config = config_cases.create_config(services, caller, {"url": URL, "rate_limit": 1})
    (job,) = queue.jobs
    for _ in range(5):  # five deliveries ahead of the test
        store.pacing.take_slot(
            caller.organisation, config["id"], 0, interval_us(1), int(clock().timestamp() * SECOND_US)
        )

    assert handle_job(lanes, json.dumps(job), Lane.TESTS).name == "paced"
    ((back, delay),) = lanes.test_queue.sent
    assert 1 <= delay <= 5
    task = store.configs.get_task(caller.organisation, job["task"])
    assert task is not None
    assert (task.state, task.date_started) == ("pending", None)
    assert lanes.fast_sender.sent == []

    clock.now += dt.timedelta(seconds=delay)
    assert handle_job(lanes, json.dumps(back), Lane.TESTS).name == "succeeded"
    assert len(lanes.fast_sender.sent) == 1


def test_a_config_without_a_rate_limit_takes_no_slot(
    services: FakeServices, caller: Principal, store: Store, clock: FakeClock, paced: tuple[ThreeLaneDeliverer, str]
) -> None:
    lanes, config_id = paced
    config_cases.update_config(services, caller, config_id, {"rate_limit": None})
    publish(caller.organisation, "session", "completed", {}, store=store, queue=lanes.queue)

    assert handle_job(lanes, json.dumps(lanes.queue.jobs.pop(0)), Lane.EVENTS).name == "delivered"
    assert store.table.get(pace_key(caller.organisation, config_id, 0)) is None


def test_most_in_any_window_counts_a_sliding_window() -> None:
    assert most_in_any_window([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # 0.5 to 1.2
    assert most_in_any_window([0.0, 0.2, 0.4, 0.6, 0.8, 0.95]) == 6
    assert most_in_any_window([0.0, 1.0, 2.0]) == 1  # a window holds what is less than a second after its start
    assert most_in_any_window([]) == 0
