"""Attempts, resend and secret rotation (docs/design.md §12-§14), on moto in-process with
fake senders: every request sent is an attempt stored in the same write as its outcome; a
resend re-opens an ended event once, however many ask at once; a rotation signs with both
secrets during its overlap and with the new one only after it."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from devstack.aws import serial
from tests.unit.support import (
    FakeClock,
    FakeQueue,
    FakeSender,
    FakeServices,
    ThreeLaneDeliverer,
    three_lane_deliverer,
)
from webhook_service import admin
from webhook_service.domain.configs import ConfigState
from webhook_service.domain.events import Event
from webhook_service.domain.retries import MAX_ATTEMPTS, RETRY_DELAYS
from webhook_service.domain.tenants import KeyState, Principal
from webhook_service.errors import (
    ConflictError,
    DependencyError,
    InvalidParameterError,
    InvalidStateError,
    NotFoundError,
    UnavailableError,
)
from webhook_service.events import publish
from webhook_service.jobs.dispatch import handle_job
from webhook_service.lanes import Lane
from webhook_service.service import configs as config_cases
from webhook_service.service import events as event_cases
from webhook_service.service import tasks as task_cases
from webhook_service.service import tenants as tenant_cases
from webhook_service.service.context import Services
from webhook_service.signing import (
    SignatureError,
    verify_ricloud,
    verify_ricloud_headers,
    verify_standard,
)
from webhook_service.storage.keys import archived_attempt_key, event_data_key, item_key
from webhook_service.storage.store import Store
from webhook_service.wiring import use_deliverer

URL = "https://receiver.example/hooks/"


@pytest.fixture
def lanes(store: Store, clock: FakeClock, services: FakeServices, queue: FakeQueue) -> Iterator[ThreeLaneDeliverer]:
    """A deliverer with three lanes; the API's tests go to `queue`, its events (resends) to
    the deliverer's events lane."""
    made = three_lane_deliverer(store, clock)
    services.test_queue = queue
    services.queue = made.queue
    use_deliverer(made)
    yield made
    use_deliverer(None)


def take(queue: Any) -> str:
    return json.dumps(queue.jobs.pop(0))


def valid_config(services: FakeServices, caller: Principal, store: Store, url: str = URL) -> str:
    config = config_cases.create_config(services, caller, {"url": url})
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    store.configs.replace(replace(stored, state=ConfigState.VALID, open_test=None), stored.version, None)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    return str(config["id"])


def publish_one(store: Store, lanes: ThreeLaneDeliverer, caller: Principal) -> str:
    return publish(caller.organisation, "session", "completed", {"id": "s1"}, store=store, queue=lanes.queue).id


def attempts(services: FakeServices, caller: Principal, event_id: str, **params: str) -> dict[str, Any]:
    return event_cases.list_attempts(services, caller, event_id, dict(params))


def fail_for_good(lanes: ThreeLaneDeliverer, status: int = 500) -> None:
    """Run the event's jobs until it ends, every attempt answered `status`."""
    lanes.fast_sender = FakeSender(status=status)
    for _ in range(MAX_ATTEMPTS):
        lanes.clock.now += RETRY_DELAYS[-1] * 2
        handle_job(lanes, take(lanes.queue), Lane.EVENTS)


# -- attempts --------------------------------------------------------------------------------


def test_a_tests_attempt_is_listed_under_its_event_with_what_the_receiver_answered(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, queue: FakeQueue
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})

    handle_job(lanes, take(queue), Lane.TESTS)

    (task,) = task_cases.list_tasks(services, caller, {"target": config["id"]})["data"]
    (event,) = event_cases.list_events(services, caller, {})["data"]
    page = attempts(services, caller, event["id"])
    (attempt,) = page["data"]
    assert (page["total_count"], page["has_more"], page["url"]) == (1, False, f"/events/{event['id']}/attempts")
    assert attempt["resource"] == "attempt"
    assert (attempt["event"], attempt["webhook_config"], attempt["organisation"]) == (
        event["id"],
        config["id"],
        caller.organisation,
    )
    assert attempt["url"] == URL + event["id"]
    assert (attempt["status_code"], attempt["error"], attempt["response_excerpt"]) == (200, None, "ok")
    assert attempt["duration_ms"] == task["result"]["duration_ms"] == 3
    assert task["result"] == {"status_code": 200, "duration_ms": 3, "response_excerpt": "ok"}  # unchanged


def test_every_attempt_of_an_event_is_listed_newest_first_with_its_status(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    statuses = [500, 503, 429, 200]
    for status in statuses:
        lanes.fast_sender = FakeSender(status=status)
        lanes.clock.now += RETRY_DELAYS[-1] * 2
        handle_job(lanes, take(lanes.queue), Lane.EVENTS)

    page = attempts(services, caller, event_id)

    assert [a["status_code"] for a in page["data"]] == list(reversed(statuses))
    assert [a["error"] for a in page["data"]] == [None, *["webhook-response-status"] * 3]
    dates = [a["date_created"] for a in page["data"]]
    assert dates == sorted(dates, reverse=True)
    assert page["total_count"] == 4
    assert event_cases.get_event(services, caller, event_id)["retries"] == 3


def test_attempts_expire_with_their_event(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)

    (attempt,) = attempts(services, caller, event_id)["data"]
    event_item = store.table.get(item_key(caller.organisation, "event", event_id))
    assert event_item is not None
    assert [record["id"] for record in event_item["log"]] == [attempt["id"]]  # held by the event's state item
    published = store.table.get(event_data_key(caller.organisation, event_id))
    assert published is not None
    assert published["expires_at"] == event_item["expires_at"]


def test_an_earlier_rounds_attempts_move_to_items_that_expire_with_their_event(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)
    (attempt,) = attempts(services, caller, event_id)["data"]

    event_cases.resend_event(services, caller, event_id, {})

    archived = store.table.get(archived_attempt_key(caller.organisation, event_id, attempt["id"]))
    state = store.table.get(item_key(caller.organisation, "event", event_id))
    assert archived is not None
    assert state is not None
    assert (archived["id"], archived["expires_at"], state["log"]) == (attempt["id"], state["expires_at"], [])
    assert [a["id"] for a in attempts(services, caller, event_id)["data"]] == [attempt["id"]]


def test_a_request_the_fast_lane_cut_is_an_attempt_that_uses_no_attempt_number(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    lanes.fast_sender = FakeSender(status=None, duration_ms=2000)
    lanes.sender = FakeSender(status=200, duration_ms=6000)

    assert handle_job(lanes, take(lanes.queue), Lane.EVENTS).name == "slow-lane"
    assert handle_job(lanes, take(lanes.slow_queue), Lane.SLOW).name == "delivered"

    page = attempts(services, caller, event_id)
    slow, cut = page["data"]
    assert (slow["status_code"], slow["duration_ms"]) == (200, 6000)
    assert (cut["status_code"], cut["error"], cut["duration_ms"]) == (None, "webhook-timeout", 2000)
    assert "not counted" in cut["response_excerpt"]
    stored = store.events.get(caller.organisation, event_id)
    assert stored is not None
    assert (stored.attempts, stored.retries) == (1, 0)  # the cut one took no number


def test_a_test_cut_by_the_fast_lane_lists_both_requests(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, queue: FakeQueue
) -> None:
    lanes.fast_sender = FakeSender(status=None, duration_ms=2000)
    lanes.sender = FakeSender(status=204, duration_ms=5000)
    config_cases.create_config(services, caller, {"url": URL})
    handle_job(lanes, take(queue), Lane.TESTS)
    handle_job(lanes, take(lanes.slow_queue), Lane.SLOW)

    (event,) = event_cases.list_events(services, caller, {})["data"]
    page = attempts(services, caller, event["id"])

    assert [(a["status_code"], a["error"]) for a in page["data"]] == [(204, None), (None, "webhook-timeout")]


def test_an_unconfigured_event_sent_nothing_and_has_no_attempt(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    event_id = publish_one(store, lanes, caller)

    assert handle_job(lanes, take(lanes.queue), Lane.EVENTS).name == "unconfigured"

    assert attempts(services, caller, event_id)["data"] == []


def test_no_outcome_is_written_without_its_attempt(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attempt and the event's outcome are one write: when it fails, neither is kept."""
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    original = store.table.write

    def refuse(operation: str, request: dict[str, Any]) -> dict[str, Any]:
        if ":record" in json.dumps(request):  # the write that records an attempt
            raise DependencyError("ProvisionedThroughputExceededException")
        return original(operation, request)

    monkeypatch.setattr(store.table, "write", refuse)
    with pytest.raises(DependencyError):
        handle_job(lanes, take(lanes.queue), Lane.EVENTS)

    event = store.events.get(caller.organisation, event_id)
    assert event is not None
    assert (event.state, event.attempts, event.claimed_until) == ("pending", 0, None)  # claim given back
    assert attempts(services, caller, event_id)["total_count"] == 0


def test_attempts_list_conventions_limit_cursors_and_total(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    fail_for_good(lanes)
    every = [a["id"] for a in attempts(services, caller, event_id, limit="100")["data"]]
    assert len(every) == MAX_ATTEMPTS

    first = attempts(services, caller, event_id, limit="2")
    after = attempts(services, caller, event_id, limit="2", after_id=every[1])
    before = attempts(services, caller, event_id, before_id=every[2])

    # The list rule of every list: a page with more behind it counts what it read (limit + 1),
    # a lower bound marked total_count_capped; the whole list in one page counts exactly.
    assert [a["id"] for a in first["data"]] == every[:2]
    assert (first["has_more"], first["total_count"], first.get("total_count_capped")) == (True, 3, True)
    assert [a["id"] for a in after["data"]] == every[2:4]
    assert (after["has_more"], after["total_count"], after.get("total_count_capped")) == (True, 3, True)
    assert [a["id"] for a in before["data"]] == every[:2]
    whole = attempts(services, caller, event_id, limit="5")
    assert (whole["has_more"], whole["total_count"], whole.get("total_count_capped")) == (False, 5, None)
    with pytest.raises(InvalidParameterError):
        attempts(services, caller, event_id, limit="0")
    with pytest.raises(InvalidParameterError):
        attempts(services, caller, event_id, state="failed")


def test_an_attempt_of_another_event_is_no_cursor(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    one, other = publish_one(store, lanes, caller), publish_one(store, lanes, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)
    (foreign,) = attempts(services, caller, other)["data"]

    with pytest.raises(InvalidParameterError) as raised:
        attempts(services, caller, one, after_id=foreign["id"])
    assert raised.value.params == {"after_id": "no such attempt"}


def test_another_organisations_event_has_no_attempts_to_show(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)
    stranger = Principal("k", str(admin.create_organisation(store.organisations, "Other")["id"]), KeyState.ACTIVE)

    for event in (event_id, "not-an-id"):
        with pytest.raises(NotFoundError):
            attempts(services, stranger, event)
        with pytest.raises(NotFoundError):
            event_cases.resend_event(services, stranger, event, {})


# -- resend ----------------------------------------------------------------------------------


def test_a_failed_event_resent_is_delivered_with_the_same_id_and_a_new_round(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    fail_for_good(lanes)
    assert event_cases.get_event(services, caller, event_id)["state"] == "failed"

    answered = event_cases.resend_event(services, caller, event_id, {})

    assert (answered["id"], answered["state"], answered["retries"], answered["error"]) == (event_id, "pending", 0, None)
    assert answered["date_delivered"] is None
    lanes.fast_sender = FakeSender(status=200)
    assert handle_job(lanes, take(lanes.queue), Lane.EVENTS).name == "delivered"
    ((url, _, headers),) = lanes.fast_sender.sent
    assert headers["webhook-id"] == event_id
    assert url == URL + event_id
    event = event_cases.get_event(services, caller, event_id)
    assert (event["state"], event["retries"]) == ("delivered", 0)
    codes = [a["status_code"] for a in attempts(services, caller, event_id, limit="100")["data"]]
    assert codes == [200, 500, 500, 500, 500, 500]


def test_a_resent_event_gets_five_new_attempts(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    fail_for_good(lanes)
    event_cases.resend_event(services, caller, event_id, {})

    fail_for_good(lanes, status=503)

    event = event_cases.get_event(services, caller, event_id)
    assert (event["state"], event["retries"]) == ("failed", MAX_ATTEMPTS - 1)
    assert attempts(services, caller, event_id)["total_count"] == 2 * MAX_ATTEMPTS
    assert lanes.queue.jobs == []


def test_two_resends_at_once_reopen_the_event_once(
    services: FakeServices,
    caller: Principal,
    lanes: ThreeLaneDeliverer,
    store: Store,
    backing: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)
    # Both requests read the event before either writes (the serial client lets them meet).
    both_read = threading.Barrier(2, timeout=30)
    original = store.events.get
    outcomes: list[Any] = []

    def read_then_wait(organisation: str, event_id: str) -> Event | None:
        found = original(organisation, event_id)
        both_read.wait()
        return found

    shared = Services(
        store=Store(store.table.name, serial(backing.dynamodb)),
        queue=lanes.queue,
        authenticator=services.authenticator,
        clock=services.clock,
    )
    monkeypatch.setattr(shared.store.events, "get", read_then_wait)

    def resend() -> None:
        try:
            outcomes.append(event_cases.resend_event(shared, caller, event_id, {})["state"])
        except InvalidStateError as exc:
            outcomes.append(exc.params)

    threads = [threading.Thread(target=resend) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(map(str, outcomes)) == sorted(["pending", str({"event": "resent by another request at once"})])
    # Each request sent the new round's job before its write: the loser's is a copy, and of
    # the two jobs of round 1's first attempt only one claims it.
    assert len(lanes.queue.jobs) == 2
    lanes.fast_sender = FakeSender(status=200)
    names = [handle_job(lanes, take(lanes.queue), Lane.EVENTS).name for _ in range(2)]
    assert sorted(names) == ["delivered", "duplicate"]
    assert len(lanes.fast_sender.sent) == 1


def test_a_job_of_an_earlier_round_does_nothing_after_a_resend(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    first_job = lanes.queue.jobs[0]
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)  # delivered
    event_cases.resend_event(services, caller, event_id, {})
    (new_job,) = lanes.queue.jobs
    assert new_job["round"] == 1

    # A copy of the first round's job turns up: the new round's attempt 1 is not its to make.
    assert handle_job(lanes, json.dumps(first_job), Lane.EVENTS).name == "duplicate"
    assert len(lanes.fast_sender.sent) == 1
    assert handle_job(lanes, take(lanes.queue), Lane.EVENTS).name == "delivered"
    assert len(lanes.fast_sender.sent) == 2


def test_a_pending_event_or_a_test_event_cannot_be_resent(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store, queue: FakeQueue
) -> None:
    config_cases.create_config(services, caller, {"url": URL})
    handle_job(lanes, take(queue), Lane.TESTS)
    (test_event,) = event_cases.list_events(services, caller, {})["data"]
    valid_config(services, caller, store)
    pending = publish_one(store, lanes, caller)

    with pytest.raises(InvalidStateError) as raised:
        event_cases.resend_event(services, caller, pending, {})
    assert raised.value.params == {"state": "pending"}
    with pytest.raises(InvalidStateError) as raised:
        event_cases.resend_event(services, caller, test_event["id"], {})
    assert raised.value.params == {"type": "webhook_config", "action": "test"}
    with pytest.raises(InvalidParameterError):
        event_cases.resend_event(services, caller, pending, {"now": True})


def test_a_resend_with_no_valid_config_to_go_to_is_refused_and_changes_nothing(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    config_id = valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)
    config_cases.delete_config(services, caller, config_id)

    with pytest.raises(InvalidStateError) as raised:
        event_cases.resend_event(services, caller, event_id, {})

    assert raised.value.params == {"webhook_config": "no valid config for this event"}
    assert event_cases.get_event(services, caller, event_id)["state"] == "delivered"
    assert lanes.queue.jobs == []


def test_a_resend_that_cannot_be_queued_answers_503_and_leaves_the_event_ended(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store
) -> None:
    valid_config(services, caller, store)
    event_id = publish_one(store, lanes, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)
    before = event_cases.get_event(services, caller, event_id)
    services.queue = FakeQueue(fail=True)

    with pytest.raises(UnavailableError):
        event_cases.resend_event(services, caller, event_id, {})

    assert event_cases.get_event(services, caller, event_id) == before
    services.queue = lanes.queue
    assert event_cases.resend_event(services, caller, event_id, {})["state"] == "pending"


# -- rotation --------------------------------------------------------------------------------


def test_rotation_gives_a_new_secret_and_keeps_the_old_one_signing_for_the_overlap(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store, clock: FakeClock
) -> None:
    config_id = valid_config(services, caller, store)
    before = config_cases.get_config(services, caller, config_id)
    stored_before = store.configs.get(caller.organisation, config_id)

    rotated = config_cases.rotate_secret(services, caller, config_id, {"overlap_seconds": 60})

    stored = store.configs.get(caller.organisation, config_id)
    assert stored is not None
    assert stored_before is not None
    assert rotated["secret"] != before["secret"]
    assert rotated["secret"].startswith("whsec_")
    assert (rotated["state"], stored.version) == ("valid", stored_before.version)
    expires = dt.datetime.fromisoformat(rotated["previous_secret_expires"])
    assert abs((expires - clock.now).total_seconds() - 60) < 1
    assert (
        config_cases.get_config(services, caller, config_id)["previous_secret_expires"]
        == rotated["previous_secret_expires"]
    )

    # During the overlap: both signatures, in both schemes.
    event_id = publish_one(store, lanes, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)
    ((_, body, headers),) = lanes.fast_sender.sent
    old, new = before["secret"], rotated["secret"]
    verify_ricloud(body, headers["Ricloud-Signature"], old)
    with pytest.raises(SignatureError):
        verify_ricloud(body, headers["Ricloud-Signature"], new)
    verify_ricloud(body, headers["Ricloud-Signature-Next"], new)
    verify_ricloud_headers(body, headers, new)
    verify_ricloud_headers(body, headers, old)
    verify_standard(body, headers, old)
    verify_standard(body, headers, new)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert headers["webhook-id"] == event_id

    # After it: the new secret alone.
    clock.now += dt.timedelta(seconds=61)
    assert config_cases.get_config(services, caller, config_id)["previous_secret_expires"] is None
    publish_one(store, lanes, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)
    _, body, headers = lanes.fast_sender.sent[-1]
    assert "Ricloud-Signature-Next" not in headers
    verify_ricloud(body, headers["Ricloud-Signature"], new)
    verify_standard(body, headers, new)
    checks: tuple[Callable[[], object], ...] = (
        lambda: verify_ricloud(body, headers["Ricloud-Signature"], old),
        lambda: verify_standard(body, headers, old),
    )
    for check in checks:
        with pytest.raises(SignatureError):
            check()


def test_rotation_with_no_overlap_stops_the_old_secret_at_once(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store, clock: FakeClock
) -> None:
    config_id = valid_config(services, caller, store)
    old = config_cases.get_config(services, caller, config_id)["secret"]

    rotated = config_cases.rotate_secret(services, caller, config_id, {"overlap_seconds": 0})

    assert rotated["previous_secret_expires"] is None
    publish_one(store, lanes, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)
    ((_, body, headers),) = lanes.fast_sender.sent
    with pytest.raises(SignatureError):
        verify_standard(body, headers, old)
    verify_standard(body, headers, rotated["secret"])


def test_rotation_defaults_to_a_day_and_a_second_rotation_drops_the_oldest_secret(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, store: Store, clock: FakeClock
) -> None:
    config_id = valid_config(services, caller, store)
    first = config_cases.get_config(services, caller, config_id)["secret"]

    once = config_cases.rotate_secret(services, caller, config_id, {})
    clock.now += dt.timedelta(seconds=2)  # a rotation a second after the last is not one made at once with it
    twice = config_cases.rotate_secret(services, caller, config_id, {"overlap_seconds": 600})

    expires = dt.datetime.fromisoformat(once["previous_secret_expires"])
    assert abs((expires - clock.now).total_seconds() - 86400) < 3
    publish_one(store, lanes, caller)
    handle_job(lanes, take(lanes.queue), Lane.EVENTS)
    ((_, body, headers),) = lanes.fast_sender.sent
    verify_standard(body, headers, once["secret"])
    verify_standard(body, headers, twice["secret"])
    with pytest.raises(SignatureError):
        verify_standard(body, headers, first)


@pytest.mark.parametrize(
    "body",
    [
        {"overlap_seconds": -1},
        {"overlap_seconds": 604801},
        {"overlap_seconds": "60"},
        {"overlap_seconds": True},
        {"overlap_seconds": 1.5},
        {"secret": "whsec_x"},
    ],
)
def test_rotation_refuses_a_bad_body_and_changes_nothing(
    services: FakeServices, caller: Principal, store: Store, body: dict[str, Any]
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})

    with pytest.raises(InvalidParameterError):
        config_cases.rotate_secret(services, caller, config["id"], body)

    assert config_cases.get_config(services, caller, config["id"])["secret"] == config["secret"]


def test_a_deactivated_config_cannot_be_rotated_nor_anothers(
    services: FakeServices, caller: Principal, store: Store
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    config_cases.delete_config(services, caller, config["id"])
    stranger = Principal("k", str(admin.create_organisation(store.organisations, "Other")["id"]), KeyState.ACTIVE)

    with pytest.raises(InvalidStateError):
        config_cases.rotate_secret(services, caller, config["id"], {})
    with pytest.raises(NotFoundError):
        config_cases.rotate_secret(services, stranger, config["id"], {})
    assert config_cases.get_config(services, caller, config["id"])["secret"] == config["secret"]


def test_an_update_racing_a_rotation_does_not_bring_the_old_secret_back(
    services: FakeServices, caller: Principal, store: Store
) -> None:
    config_id = valid_config(services, caller, store)
    read = store.configs.get(caller.organisation, config_id)
    assert read is not None
    rotated = config_cases.rotate_secret(services, caller, config_id, {})

    with pytest.raises(ConflictError):  # the update read the config before the rotation
        store.configs.replace(replace(read, url=URL + "v2"), read.version, None)

    assert config_cases.get_config(services, caller, config_id)["secret"] == rotated["secret"]
    updated = config_cases.update_config(services, caller, config_id, {"url": URL + "v3"})
    assert updated["secret"] == rotated["secret"]
    assert updated["previous_secret_expires"] == rotated["previous_secret_expires"]


def test_a_test_event_carries_neither_secret_nor_its_expiry(
    services: FakeServices, caller: Principal, lanes: ThreeLaneDeliverer, queue: FakeQueue
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    config_cases.rotate_secret(services, caller, config["id"], {"overlap_seconds": 60})

    handle_job(lanes, take(queue), Lane.TESTS)

    ((_, body, _),) = lanes.sender.sent + lanes.fast_sender.sent
    data = json.loads(body)["data"]
    assert "secret" not in data
    assert "previous_secret_expires" not in data
