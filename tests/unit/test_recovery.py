"""Recovering a config's receiver: `POST /configs/webhook/{id}/recover` makes a
`webhook_config.recover` task whose steps resend the config's `failed` events of a window,
oldest first, a bounded number a step, from a cursor kept on the task; paced as any delivery,
resumable, and safe to run twice (domain.recovery, service.recovery, jobs.recovery,
storage.recoveries)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from tests.support.windows import most_in_any_window
from tests.unit.support import Backing, FakeClock, FakeQueue, FakeServices, ThreeLaneDeliverer, three_lane_deliverer
from tests.unit.test_pacing import Harness
from webhook_service.auth import Authenticator
from webhook_service.domain.configs import FAST_LANE_OPEN_TESTS, ConfigState
from webhook_service.domain.events import Event, EventState, config_test_event, new_event
from webhook_service.domain.pacing import LATE_AT_MOST_US, interval_us
from webhook_service.domain.recovery import STEP_LEAST, STEP_MOST, next_step_delay, step_size
from webhook_service.domain.tenants import Principal
from webhook_service.errors import (
    InvalidParameterError,
    InvalidStateError,
    LimitExceededError,
    NotFoundError,
    UnavailableError,
)
from webhook_service.jobs.dispatch import handle_job
from webhook_service.jobs.recovery import run_recover
from webhook_service.lanes import Lane, recover_job
from webhook_service.service import configs as config_cases
from webhook_service.service import recovery as recovery_cases
from webhook_service.service import tasks as task_cases
from webhook_service.service import tenants as tenant_cases
from webhook_service.storage.store import Store
from webhook_service.sweep import open_job
from webhook_service.timefmt import format_datetime

URL = "https://receiver.example/hooks/"
HOUR = dt.timedelta(hours=1)


def iso(value: dt.datetime) -> str:
    return format_datetime(value)


def valid_config(services: FakeServices, store: Store, caller: Principal, rate_limit: int | None = None) -> str:
    """A valid config with `rate_limit`, the organisation's default."""
    config = config_cases.create_config(services, caller, {"url": URL, "rate_limit": rate_limit})
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    store.configs.replace(replace(stored, state=ConfigState.VALID, open_test=None), stored.version, None)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    if services.test_queue is not None:  # its test is not run: the config is made valid here
        services.test_queue.jobs.clear()
        services.test_queue.sent.clear()
    return str(config["id"])


def failed_event(store: Store, caller: Principal, config_id: str | None, created: dt.datetime, n: int = 0) -> Event:
    """An event created at `created` whose last attempt (to `config_id`) failed."""
    event = store.events.create(new_event(caller.organisation, "session", "completed", {"n": n}, None, created))
    failed = replace(event, state=EventState.FAILED, webhook_config=config_id, error="webhook-timeout")
    assert store.events.save(failed)
    return failed


def outage(store: Store, caller: Principal, config_id: str, start: dt.datetime, count: int) -> list[str]:
    """`count` failed events of the config, a second apart from `start`."""
    return [failed_event(store, caller, config_id, start + dt.timedelta(seconds=n), n).id for n in range(count)]


def recover(services: FakeServices, caller: Principal, config_id: str, **body: Any) -> dict[str, Any]:
    return recovery_cases.recover_config(services, caller, config_id, body)


def run_steps(lanes: ThreeLaneDeliverer, most: int = 20) -> list[str]:
    """Run the recover steps queued on the tests lane until none is left; their outcomes."""
    outcomes: list[str] = []
    for _ in range(most):
        if not lanes.test_queue.jobs:
            return outcomes
        job = lanes.test_queue.jobs.pop(0)
        outcomes.append(handle_job(lanes, json.dumps(job), Lane.TESTS).name)
    raise AssertionError(f"more than {most} steps")


def state_of(store: Store, caller: Principal, event_id: str) -> Event:
    event = store.events.get(caller.organisation, event_id)
    assert event is not None
    return event


@pytest.fixture
def lanes(store: Store, clock: FakeClock) -> ThreeLaneDeliverer:
    return three_lane_deliverer(store, clock)


# -- the request ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "since"),
        ({"since": "2026-11-27", "extra": 1}, "extra"),
        ({"since": "yesterday"}, "since"),
        ({"since": 1795856400}, "since"),
        ({"since": "2026-11-27", "until": "later"}, "until"),
        ({"since": "2026-11-12T18:00:00Z"}, "since"),  # more than 14 days back
        ({"since": "2026-11-27", "until": "2026-11-28"}, "until"),  # in the future
        ({"since": "2026-11-27T12:00:00Z", "until": "2026-11-27T12:00:00Z"}, "since"),  # empty
        ({"since": "2026-11-27T13:00:00Z", "until": "2026-11-27T12:00:00Z"}, "since"),
    ],
)
def test_a_bad_window_is_refused_naming_the_field_and_nothing_is_written(
    services: FakeServices, store: Store, caller: Principal, body: dict[str, Any], param: str
) -> None:
    config_id = valid_config(services, store, caller)
    with pytest.raises(InvalidParameterError) as refused:
        recover(services, caller, config_id, **body)
    assert set(refused.value.params or {}) == {param}
    assert task_cases.list_tasks(services, caller, {"type": "webhook_config.recover"})["data"] == []


def test_until_defaults_to_now_and_a_little_ahead_of_our_clock_is_taken_as_now(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock
) -> None:
    config_id = valid_config(services, store, caller)
    since = clock.now - dt.timedelta(days=14) + dt.timedelta(minutes=1)  # 14 days back is allowed
    first = recover(services, caller, config_id, since=iso(since))
    ahead = recover(services, caller, config_id, since=iso(since), until=iso(clock.now + dt.timedelta(seconds=30)))
    for task in (first, ahead):
        assert task["result"]["since"] == iso(since)
        assert task["result"]["until"] <= iso(clock.now)


@pytest.mark.parametrize("state", [ConfigState.DEACTIVATED, ConfigState.NEW, ConfigState.INVALID])
def test_only_a_valid_config_can_be_recovered(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock, state: ConfigState
) -> None:
    config_id = valid_config(services, store, caller)
    stored = store.configs.get(caller.organisation, config_id)
    assert stored is not None
    store.configs.replace(replace(stored, state=state), stored.version, None)
    with pytest.raises(InvalidStateError) as refused:
        recover(services, caller, config_id, since=iso(clock.now - HOUR))
    assert refused.value.params == {"state": str(state)}


def test_another_organisations_config_or_a_malformed_id_is_not_found(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock
) -> None:
    config_id = valid_config(services, store, caller)
    stranger = Principal(caller.key_id, store.organisations.create("other", "Other", clock()).id, caller.state)
    for who, target in ((stranger, config_id), (caller, "not-an-id")):
        with pytest.raises(NotFoundError):
            recover(services, who, target, since=iso(clock.now - HOUR))


def test_the_task_is_stored_pending_then_its_first_step_queued_in_the_tests_lane(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock
) -> None:
    services.test_queue = FakeQueue()
    config_id = valid_config(services, store, caller)
    since = clock.now - HOUR

    task = recover(services, caller, config_id, since=iso(since))

    assert (task["type"], task["target"], task["state"], task["error"]) == (
        "webhook_config.recover",
        config_id,
        "pending",
        None,
    )
    assert task["result"] == {
        "since": iso(since),
        "until": task["result"]["until"],
        "found": 0,
        "resent": 0,
        "skipped": 0,
    }
    assert services.test_queue.jobs == [recover_job(task["id"], caller.organisation, config_id)]
    assert task_cases.get_task(services, caller, task["id"]) == task
    listed = task_cases.list_tasks(services, caller, {"type": "webhook_config.recover", "target": config_id})
    assert [t["id"] for t in listed["data"]] == [task["id"]]


def test_a_recover_that_cannot_be_queued_ends_failed_and_answers_503(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock
) -> None:
    config_id = valid_config(services, store, caller)
    services.test_queue = FakeQueue(fail=True)
    with pytest.raises(UnavailableError) as refused:
        recover(services, caller, config_id, since=iso(clock.now - HOUR))
    task_id = (refused.value.params or {})["task"]
    task = task_cases.get_task(services, caller, task_id)
    assert (task["state"], task["error"]) == ("failed", "queue-unavailable")


# -- fair use: a task on the tests lane, held as a test is ---------------------------------------


def open_tasks(store: Store, caller: Principal) -> int:
    return store.organisations.open_tests(caller.organisation)


def test_a_recover_is_one_of_the_organisations_open_tasks_until_it_ends(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock, lanes: ThreeLaneDeliverer
) -> None:
    services.test_queue = lanes.test_queue
    config_id = valid_config(services, store, caller)
    outage(store, caller, config_id, clock.now - HOUR, 3)
    before = open_tasks(store, caller)

    recover(services, caller, config_id, since=iso(clock.now - 2 * HOUR))
    assert open_tasks(store, caller) == before + 1
    assert run_steps(lanes)[-1] == "succeeded"
    assert open_tasks(store, caller) == before


def test_a_recover_past_the_organisations_open_tasks_is_refused_and_writes_nothing(
    backing: Backing, caller: Principal, clock: FakeClock
) -> None:
    store = Store(backing.table_name, backing.dynamodb, open_tests_cap=1)
    capped = FakeServices(store=store, queue=FakeQueue(), authenticator=Authenticator(store.organisations), clock=clock)
    capped.test_queue = FakeQueue()
    config_id = valid_config(capped, store, caller)  # its test, never run, is the one open task
    assert open_tasks(store, caller) == 1

    with pytest.raises(LimitExceededError) as refused:
        recover(capped, caller, config_id, since=iso(clock.now - HOUR))

    assert set(refused.value.params or {}) == {"open_tests"}
    assert capped.test_queue.jobs == []
    listed = task_cases.list_tasks(capped, caller, {"type": "webhook_config.recover"})
    assert listed["data"] == []
    assert open_tasks(store, caller) == 1


def test_an_organisation_with_the_tests_lanes_share_open_recovers_in_the_slow_lane(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock, lanes: ThreeLaneDeliverer
) -> None:
    services.test_queue, services.slow_queue = lanes.test_queue, lanes.slow_queue
    config_id = valid_config(services, store, caller)
    for n in range(FAST_LANE_OPEN_TESTS):  # open tests enough to fill its share of the tests lane
        config_cases.create_config(services, caller, {"url": f"{URL}{n}/"})
    lanes.test_queue.jobs.clear()
    outage(store, caller, config_id, clock.now - HOUR, 2)

    task = recover(services, caller, config_id, since=iso(clock.now - 2 * HOUR))

    assert lanes.test_queue.jobs == []
    (job,) = [j for j in lanes.slow_queue.jobs if j.get("job") == "recover"]
    assert job == recover_job(task["id"], caller.organisation, config_id)
    assert handle_job(lanes, json.dumps(lanes.slow_queue.jobs.pop()), Lane.SLOW).name == "succeeded"


# -- the steps -----------------------------------------------------------------------------


def test_a_step_resends_only_the_configs_failed_events_of_the_window_and_the_task_succeeds(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock, lanes: ThreeLaneDeliverer
) -> None:
    services.test_queue = lanes.test_queue
    config_id = valid_config(services, store, caller)
    other_id = valid_config(services, store, caller)  # now the default: ours is routed by a key below
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config_id})
    start = clock.now - 3 * HOUR
    before = failed_event(store, caller, config_id, start - dt.timedelta(seconds=1))  # before `since`
    ours = outage(store, caller, config_id, start, 5)
    elsewhere = failed_event(store, caller, other_id, start + dt.timedelta(seconds=10))  # another config's
    delivered = store.events.create(
        new_event(caller.organisation, "a", "b", {}, None, start + dt.timedelta(seconds=11))
    )
    assert store.events.save(replace(delivered, state=EventState.DELIVERED, webhook_config=config_id))
    test_event = config_test_event(caller.organisation, config_id, {}, caller.key_id, "t" * 8, start + HOUR)
    store.events.create(test_event)
    assert store.events.save(replace(test_event, state=EventState.FAILED))
    after = failed_event(store, caller, config_id, start + 2 * HOUR + dt.timedelta(seconds=1))  # at `until`

    task = recover(services, caller, config_id, since=iso(start), until=iso(start + 2 * HOUR))
    assert run_steps(lanes) == ["succeeded"]

    done = task_cases.get_task(services, caller, task["id"])
    assert done["state"] == "succeeded"
    assert (done["result"]["found"], done["result"]["resent"], done["result"]["skipped"]) == (5, 5, 0)
    assert done["date_started"] is not None
    assert done["date_completed"] is not None
    for event_id in ours:
        event = state_of(store, caller, event_id)
        assert (event.state, event.resends, event.attempts) == (EventState.PENDING, 1, 0)
    for event_id in (before.id, elsewhere.id, after.id):
        assert state_of(store, caller, event_id).state == EventState.FAILED
    assert state_of(store, caller, delivered.id).state == EventState.DELIVERED
    assert state_of(store, caller, test_event.id).state == EventState.FAILED
    resent_jobs = [job for job in lanes.queue.jobs if job.get("job") == "event"]
    assert sorted(job["event"] for job in resent_jobs) == sorted(ours)
    assert {(job["attempt"], job["round"]) for job in resent_jobs} == {(1, 1)}


def test_an_event_whose_route_now_leads_to_another_config_is_skipped_once_across_steps(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock, lanes: ThreeLaneDeliverer
) -> None:
    """Skipped events stay `failed`: the next step starts after the cursor's own entry, so
    none is found twice (steps of 60 at a rate of 1)."""
    services.test_queue = lanes.test_queue
    config_id = valid_config(services, store, caller, rate_limit=1)
    ours = outage(store, caller, config_id, clock.now - HOUR, step_size(1) + 5)
    valid_config(services, store, caller)  # the organisation's default now

    task = recover(services, caller, config_id, since=iso(clock.now - 2 * HOUR))
    assert run_steps(lanes) == ["stepped", "succeeded"]

    result = task_cases.get_task(services, caller, task["id"])["result"]
    assert (result["found"], result["resent"], result["skipped"]) == (len(ours), 0, len(ours))
    assert all(state_of(store, caller, event_id).state == EventState.FAILED for event_id in ours)


def test_each_step_takes_a_minute_of_the_rate_at_most_and_the_next_comes_when_they_are_due(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock, lanes: ThreeLaneDeliverer
) -> None:
    assert (step_size(None), step_size(1), step_size(2), step_size(100)) == (STEP_MOST, 60, 120, STEP_MOST)
    assert step_size(1) >= STEP_LEAST
    assert (next_step_delay(60, 1), next_step_delay(0, 1), next_step_delay(250, None)) == (63, 0, 0)
    assert (next_step_delay(60, 1, elapsed=10.5), next_step_delay(10, 20, elapsed=3.0)) == (53, 0)
    services.test_queue = lanes.test_queue
    config_id = valid_config(services, store, caller, rate_limit=1)
    ids = outage(store, caller, config_id, clock.now - HOUR, 65)

    task = recover(services, caller, config_id, since=iso(clock.now - 2 * HOUR))
    started = time.monotonic()
    assert run_recover(lanes, caller.organisation, task["id"]).name == "stepped"
    took = time.monotonic() - started  # the step's own measure of itself is inside this

    saved = task_cases.get_task(services, caller, task["id"])
    assert saved["state"] == "processing"
    assert saved["result"]["resent"] == 60
    ((job, delay),) = lanes.test_queue.sent[-1:]
    assert job == recover_job(task["id"], caller.organisation, config_id)
    # 60 slots of 1.05 s, less what the step took: at most `took`, however loaded the machine
    assert next_step_delay(60, 1, elapsed=took) <= delay <= 63
    assert [state_of(store, caller, i).state for i in ids].count(EventState.PENDING) == 60
    assert all(state_of(store, caller, i).state == EventState.PENDING for i in ids[:60])  # oldest first

    assert run_recover(lanes, caller.organisation, task["id"]).name == "succeeded"
    result = task_cases.get_task(services, caller, task["id"])["result"]
    assert (result["found"], result["resent"]) == (65, 65)


def test_a_step_short_of_time_saves_where_it_stopped_and_queues_the_next_at_once(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock, lanes: ThreeLaneDeliverer
) -> None:
    services.test_queue = lanes.test_queue
    config_id = valid_config(services, store, caller)
    ids = outage(store, caller, config_id, clock.now - HOUR, 3)
    task = recover(services, caller, config_id, since=iso(clock.now - 2 * HOUR))
    lanes.test_queue.jobs.clear()

    assert run_recover(lanes, caller.organisation, task["id"], time_left=lambda: 5.0).name == "stepped"

    assert lanes.test_queue.sent[-1] == (recover_job(task["id"], caller.organisation, config_id), 0)
    assert all(state_of(store, caller, i).state == EventState.FAILED for i in ids)
    assert run_steps(lanes) == ["succeeded"]
    assert all(state_of(store, caller, i).state == EventState.PENDING for i in ids)


def test_a_step_killed_midway_is_redone_from_the_saved_cursor_and_reopens_nothing_twice(
    services: FakeServices,
    store: Store,
    caller: Principal,
    clock: FakeClock,
    lanes: ThreeLaneDeliverer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services.test_queue = lanes.test_queue
    config_id = valid_config(services, store, caller)
    ids = outage(store, caller, config_id, clock.now - HOUR, 6)
    task = recover(services, caller, config_id, since=iso(clock.now - 2 * HOUR))
    job = lanes.test_queue.jobs.pop()
    resend = store.events.resend
    calls = Counter[str]()

    def dies_at_the_fourth(seen: Event, reopened: Event, before: dt.datetime) -> bool:
        calls["resend"] += 1
        if calls["resend"] == 4:
            raise RuntimeError("the invocation ends here")
        return resend(seen, reopened, before)

    monkeypatch.setattr(store.events, "resend", dies_at_the_fourth)
    with pytest.raises(RuntimeError):
        handle_job(lanes, json.dumps(job), Lane.TESTS)
    monkeypatch.setattr(store.events, "resend", resend)
    stored = store.configs.get_task(caller.organisation, task["id"])
    assert stored is not None
    assert (stored.state, stored.cursor) == ("pending", None)  # nothing saved: the job comes back

    assert handle_job(lanes, json.dumps(job), Lane.TESTS).name == "succeeded"

    assert all(state_of(store, caller, i).resends == 1 for i in ids)
    result = task_cases.get_task(services, caller, task["id"])["result"]
    assert result["resent"] == 3  # the three the dead step re-opened are no longer failed: not found again
    # The dead step's job for the fourth event is a copy of the one the step that lived sent.
    fourth = [j for j in lanes.queue.jobs if j.get("event") == ids[3]]
    assert len(fourth) == 2
    assert fourth[0] == fourth[1]


def test_two_copies_of_one_step_save_once_and_only_one_queues_the_next(
    services: FakeServices,
    store: Store,
    caller: Principal,
    clock: FakeClock,
    lanes: ThreeLaneDeliverer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services.test_queue = lanes.test_queue
    config_id = valid_config(services, store, caller, rate_limit=1)
    outage(store, caller, config_id, clock.now - HOUR, 2 * step_size(1) + STEP_LEAST)  # three steps' worth
    task = recover(services, caller, config_id, since=iso(clock.now - 2 * HOUR))
    lanes.test_queue.jobs.clear()
    as_read = store.configs.get_task(caller.organisation, task["id"])
    assert run_recover(lanes, caller.organisation, task["id"]).name == "stepped"
    monkeypatch.setattr(store.configs, "get_task", lambda organisation, task_id: as_read)  # read before the save

    assert run_recover(lanes, caller.organisation, task["id"]).name == "duplicate"
    assert len(lanes.test_queue.jobs) == 1


def test_two_recovers_of_one_window_at_once_deliver_each_event_once(
    services: FakeServices,
    store: Store,
    caller: Principal,
    clock: FakeClock,
    lanes: ThreeLaneDeliverer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second recover's step read the window before the first's resends were written:
    each of its re-opens loses its conditional write (skipped), and its jobs are copies of the
    first's, so the receiver gets each event once."""
    services.test_queue = lanes.test_queue
    config_id = valid_config(services, store, caller)
    ids = outage(store, caller, config_id, clock.now - HOUR, 8)
    since = iso(clock.now - 2 * HOUR)
    first = recover(services, caller, config_id, since=since)
    second = recover(services, caller, config_id, since=since)
    lanes.test_queue.jobs.clear()
    read_early = store.recoveries.failed_page
    page = read_early(caller.organisation, config_id, clock.now - 2 * HOUR, clock.now, None, STEP_MOST)

    assert run_recover(lanes, caller.organisation, first["id"]).name == "succeeded"
    monkeypatch.setattr(store.recoveries, "failed_page", lambda *args: page)
    assert run_recover(lanes, caller.organisation, second["id"]).name == "succeeded"
    monkeypatch.setattr(store.recoveries, "failed_page", read_early)
    clock.now += dt.timedelta(seconds=2)
    third = recover(services, caller, config_id, since=since)  # after: finds nothing failed
    assert run_steps(lanes) == ["succeeded"]

    results = [task_cases.get_task(services, caller, t["id"])["result"] for t in (first, second, third)]
    assert [(r["found"], r["resent"], r["skipped"]) for r in results] == [(8, 8, 0), (8, 0, 8), (0, 0, 0)]
    for job in list(lanes.queue.jobs):
        handle_job(lanes, json.dumps(job), Lane.EVENTS)
    delivered = Counter(headers["webhook-id"] for _, _, headers in lanes.fast_sender.sent)
    assert delivered == dict.fromkeys(ids, 1)


def test_a_config_no_longer_valid_ends_its_recovery_superseded(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock, lanes: ThreeLaneDeliverer
) -> None:
    services.test_queue = lanes.test_queue
    config_id = valid_config(services, store, caller)
    ids = outage(store, caller, config_id, clock.now - HOUR, 2)
    task = recover(services, caller, config_id, since=iso(clock.now - 2 * HOUR))
    config_cases.delete_config(services, caller, config_id)

    assert run_steps(lanes) == ["superseded"]

    ended = task_cases.get_task(services, caller, task["id"])
    assert (ended["state"], ended["error"]) == ("failed", "superseded")
    assert all(state_of(store, caller, i).state == EventState.FAILED for i in ids)


def test_the_sweep_resumes_a_recovery_whose_steps_stopped(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock
) -> None:
    config_id = valid_config(services, store, caller)
    task = recover(services, caller, config_id, since=iso(clock.now - HOUR))
    stored = store.configs.get_task(caller.organisation, task["id"])
    assert stored is not None
    assert open_job(stored) == recover_job(task["id"], caller.organisation, config_id)


def test_recovered_events_are_paced_as_any_delivery(
    services: FakeServices, store: Store, caller: Principal, clock: FakeClock, lanes: ThreeLaneDeliverer
) -> None:
    services.test_queue = lanes.test_queue
    config_id = valid_config(services, store, caller, rate_limit=5)
    ids = outage(store, caller, config_id, clock.now - HOUR, 30)
    harness = Harness(lanes, clock)
    recover(services, caller, config_id, since=iso(clock.now - 2 * HOUR))
    assert run_steps(lanes) == ["succeeded"]

    outcomes = harness.run(most_jobs=300)

    assert outcomes["delivered"] == 30
    assert len(harness.sent_at) == 30
    assert most_in_any_window(harness.sent_at) <= 5
    assert max(harness.sent_at) - min(harness.sent_at) >= 29 * interval_us(5) / 1_000_000 - LATE_AT_MOST_US / 1_000_000
    assert all(state_of(store, caller, i).state == EventState.DELIVERED for i in ids)
