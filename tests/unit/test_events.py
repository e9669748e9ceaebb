"""Events: publishing, routing at delivery time (key, then organisation default), and the
retry schedule with the clock injected (docs/design.md §7.10)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from tests.unit.support import FakeClock, FakeDeliverer, FakeQueue, FakeSender, FakeServices
from webhook_service import admin
from webhook_service.domain.events import route
from webhook_service.domain.tenants import KeyState, Principal
from webhook_service.errors import InvalidParameterError, InvalidStateError, NotFoundError
from webhook_service.events import publish
from webhook_service.httpcodes import delay_for_answer, parse_retry_after
from webhook_service.jobs.dispatch import handle_job
from webhook_service.service import configs as config_cases
from webhook_service.service import events as event_cases
from webhook_service.service import tenants as tenant_cases
from webhook_service.storage.store import Store

URL = "https://receiver.example/hooks/"
MINUTE = dt.timedelta(minutes=1)


class RecordingQueue(FakeQueue):
    """A FakeQueue whose (job, delay) pairs are taken in the order they were sent."""

    def take(self) -> tuple[dict[str, Any], int]:
        return self.sent.pop(0)


@pytest.fixture
def queue_box() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def deliverer(store: Store, clock: FakeClock, queue_box: RecordingQueue) -> FakeDeliverer:
    return FakeDeliverer(store=store, sender=FakeSender(), queue=queue_box, clock=clock, jitter=lambda: 0.0)


def valid_config(services: FakeServices, caller: Principal, store: Store, url: str = URL) -> dict[str, Any]:
    """A config made `valid` as its test would make it."""
    config = config_cases.create_config(services, caller, {"url": url})
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    store.configs.replace(stored.__class__(**{**stored.__dict__, "state": "valid"}), stored.version, None)
    return config


def publish_event(store: Store, queue: RecordingQueue, caller: Principal, key: str | None = None) -> str:
    event = publish(caller.organisation, "session", "completed", {"id": "s1"}, key=key, store=store, queue=queue)
    return event.id


def run_next(deliverer: FakeDeliverer, queue: RecordingQueue) -> str:
    job, _ = queue.take()
    return handle_job(deliverer, json.dumps(job)).name


def event_of(services: FakeServices, caller: Principal, event_id: str) -> dict[str, Any]:
    return event_cases.get_event(services, caller, event_id)


# -- routing ---------------------------------------------------------------------------------


def test_route_key_config_takes_precedence_over_the_default() -> None:
    assert route("key-config", "default-config") == "key-config"
    assert route(None, "default-config") == "default-config"
    assert route(None, None) is None


def test_event_goes_to_the_organisation_default(
    services: FakeServices, caller: Principal, store: Store, deliverer: FakeDeliverer, queue_box: RecordingQueue
) -> None:
    config = valid_config(services, caller, store)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    event_id = publish_event(store, queue_box, caller)

    assert run_next(deliverer, queue_box) == "delivered"

    ((url, body, _),) = deliverer.sender.sent
    assert url == URL + event_id
    assert json.loads(body)["webhook_config"] == config["id"]
    delivered = event_of(services, caller, event_id)
    assert (delivered["state"], delivered["retries"], delivered["webhook_config"]) == ("delivered", 0, config["id"])
    assert delivered["date_delivered"] is not None


def test_event_of_a_key_with_its_own_config_goes_there(
    services: FakeServices, caller: Principal, store: Store, deliverer: FakeDeliverer, queue_box: RecordingQueue
) -> None:
    default = valid_config(services, caller, store, URL + "default/")
    own = valid_config(services, caller, store, URL + "own/")
    key, _ = admin.create_key(store.organisations, caller.organisation)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": default["id"]})
    tenant_cases.update_key(services, caller, key["id"], {"webhook_config": own["id"]})

    publish_event(store, queue_box, caller, key=key["id"])
    publish_event(store, queue_box, caller)
    run_next(deliverer, queue_box)
    run_next(deliverer, queue_box)

    urls = [url for url, _, _ in deliverer.sender.sent]
    assert urls[0].startswith(URL + "own/")
    assert urls[1].startswith(URL + "default/")


def test_event_without_any_config_fails_unconfigured(
    services: FakeServices, caller: Principal, store: Store, deliverer: FakeDeliverer, queue_box: RecordingQueue
) -> None:
    event_id = publish_event(store, queue_box, caller)

    assert run_next(deliverer, queue_box) == "unconfigured"

    failed = event_of(services, caller, event_id)
    assert (failed["state"], failed["error"], failed["webhook_config"]) == ("failed", "unconfigured", None)
    assert deliverer.sender.sent == []
    assert queue_box.sent == []


def test_event_routed_to_a_config_not_valid_fails_unconfigured(
    services: FakeServices, caller: Principal, store: Store, deliverer: FakeDeliverer, queue_box: RecordingQueue
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})  # still `new`
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    event_id = publish_event(store, queue_box, caller)

    run_next(deliverer, queue_box)

    failed = event_of(services, caller, event_id)
    assert (failed["error"], failed["webhook_config"]) == ("unconfigured", config["id"])


# -- the retry schedule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, MINUTE), (2, 10 * MINUTE), (3, dt.timedelta(hours=1)), (4, dt.timedelta(hours=3)), (5, None)],
)
def test_next_attempt_delay_follows_the_schedule(attempt: int, expected: dt.timedelta | None) -> None:
    assert delay_for_answer(attempt, 500, None, jitter=0.0) == expected


def test_next_attempt_delay_jitter_moves_it_by_at_most_a_tenth() -> None:
    assert delay_for_answer(2, 500, None, jitter=1.0) == 11 * MINUTE
    assert delay_for_answer(2, 500, None, jitter=-1.0) == 9 * MINUTE
    assert delay_for_answer(2, 500, None, jitter=7.0) == 11 * MINUTE


def test_next_attempt_delay_gone_stops_retrying() -> None:
    assert delay_for_answer(1, 410, None, jitter=0.0) is None


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, dt.timedelta(minutes=30), dt.timedelta(minutes=30)),  # later than the schedule: honoured
        (503, dt.timedelta(hours=9), dt.timedelta(hours=3)),  # capped at the schedule's longest delay
        (429, dt.timedelta(seconds=5), MINUTE),  # never earlier than the schedule
        (500, dt.timedelta(minutes=30), MINUTE),  # only 429 and 503 are listened to
    ],
)
def test_next_attempt_delay_retry_after_is_honoured_within_the_schedule(
    status: int, retry_after: dt.timedelta, expected: dt.timedelta
) -> None:
    assert delay_for_answer(1, status, retry_after, jitter=0.0) == expected


def test_parse_retry_after_seconds_and_http_date() -> None:
    now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)

    assert parse_retry_after("120", now) == dt.timedelta(seconds=120)
    assert parse_retry_after("Fri, 27 Nov 2026 12:30:00 GMT", now) == dt.timedelta(minutes=30)
    assert parse_retry_after("Fri, 27 Nov 2026 11:00:00 GMT", now) == dt.timedelta(0)
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_event_delivered_on_its_third_attempt_ends_delivered_with_two_retries(
    services: FakeServices,
    caller: Principal,
    store: Store,
    deliverer: FakeDeliverer,
    queue_box: RecordingQueue,
    clock: FakeClock,
) -> None:
    config = valid_config(services, caller, store)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    event_id = publish_event(store, queue_box, caller)
    deliverer.sender = FakeSender(status=500)

    assert run_next(deliverer, queue_box) == "retrying"
    job, delay = queue_box.sent[0]
    assert (job["attempt"], delay) == (2, 60)
    pending = event_of(services, caller, event_id)
    assert (pending["state"], pending["retries"], pending["error"]) == ("pending", 0, "webhook-response-status")

    clock.now += MINUTE
    assert run_next(deliverer, queue_box) == "retrying"
    job, delay = queue_box.sent[0]
    assert (job["attempt"], delay) == (3, 600)

    clock.now += 10 * MINUTE
    deliverer.sender = FakeSender(status=204)
    assert run_next(deliverer, queue_box) == "delivered"

    delivered = event_of(services, caller, event_id)
    assert (delivered["state"], delivered["retries"], delivered["error"]) == ("delivered", 2, None)
    assert delivered["date_delivered"] is not None
    assert queue_box.sent == []


def test_event_failing_five_times_ends_failed_with_four_retries(
    services: FakeServices,
    caller: Principal,
    store: Store,
    deliverer: FakeDeliverer,
    queue_box: RecordingQueue,
    clock: FakeClock,
) -> None:
    config = valid_config(services, caller, store)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    event_id = publish_event(store, queue_box, caller)
    deliverer.sender = FakeSender(status=500)

    outcomes = []
    for _ in range(5):
        outcomes.append(run_next(deliverer, queue_box))
        clock.now += dt.timedelta(hours=4)

    assert outcomes == ["retrying"] * 4 + ["failed"]
    failed = event_of(services, caller, event_id)
    assert (failed["state"], failed["retries"], failed["error"]) == ("failed", 4, "webhook-response-status")
    assert len(deliverer.sender.sent) == 5
    assert queue_box.sent == []


def test_event_attempt_due_later_than_sqs_can_delay_waits_in_hops(
    services: FakeServices,
    caller: Principal,
    store: Store,
    deliverer: FakeDeliverer,
    queue_box: RecordingQueue,
    clock: FakeClock,
) -> None:
    config = valid_config(services, caller, store)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    publish_event(store, queue_box, caller)
    deliverer.sender = FakeSender(status=503)
    for _ in range(3):  # attempts 1-3 fail; attempt 4 is due an hour after attempt 3
        run_next(deliverer, queue_box)
        clock.now += dt.timedelta(hours=2)
    clock.now -= dt.timedelta(hours=2)
    job, delay = queue_box.sent[0]
    assert (job["attempt"], delay) == (4, 3600)

    clock.now += dt.timedelta(minutes=15)
    assert run_next(deliverer, queue_box) == "waiting"
    job, delay = queue_box.sent[0]

    assert job["attempt"] == 4
    assert 2700 <= delay <= 2701
    assert len(deliverer.sender.sent) == 3


def test_event_receiver_gone_stops_retries_and_invalidates_the_config(
    services: FakeServices, caller: Principal, store: Store, deliverer: FakeDeliverer, queue_box: RecordingQueue
) -> None:
    config = valid_config(services, caller, store)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    event_id = publish_event(store, queue_box, caller)
    deliverer.sender = FakeSender(status=410)

    assert run_next(deliverer, queue_box) == "failed"

    assert event_of(services, caller, event_id)["state"] == "failed"
    assert config_cases.get_config(services, caller, config["id"])["state"] == "invalid"
    assert queue_box.sent == []


def test_event_duplicated_job_does_not_send_twice(
    services: FakeServices, caller: Principal, store: Store, deliverer: FakeDeliverer, queue_box: RecordingQueue
) -> None:
    config = valid_config(services, caller, store)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    publish_event(store, queue_box, caller)
    job, _ = queue_box.sent[0]

    handle_job(deliverer, json.dumps(job))
    assert handle_job(deliverer, json.dumps(job)).name == "duplicate"

    assert len(deliverer.sender.sent) == 1


# -- publishing --------------------------------------------------------------------------------


def test_publish_drops_secrets_and_tokens_from_data(
    services: FakeServices, caller: Principal, store: Store, queue_box: RecordingQueue
) -> None:
    data = {"id": "k1", "secret": "whsec_x", "nested": [{"token": "t", "keep": 1}], "token_hash": "h"}

    event = publish(caller.organisation, "key", "created", data, store=store, queue=queue_box)

    assert event.data == {"id": "k1", "nested": [{"keep": 1}]}
    assert event_cases.get_event(services, caller, event.id)["data"] == {"id": "k1", "nested": [{"keep": 1}]}


@pytest.mark.parametrize(
    ("type_", "action", "data", "field"),
    [("Session", "completed", {}, "type"), ("session", "", {}, "action"), ("session", "done", [], "data")],
)
def test_publish_bad_input_is_refused_and_stores_nothing(
    caller: Principal, store: Store, queue_box: RecordingQueue, type_: str, action: str, data: Any, field: str
) -> None:
    with pytest.raises(InvalidParameterError) as raised:
        publish(caller.organisation, type_, action, data, store=store, queue=queue_box)

    assert field in (raised.value.params or {})
    assert queue_box.sent == []


def test_publish_unknown_key_is_not_found(caller: Principal, store: Store, queue_box: RecordingQueue) -> None:
    with pytest.raises(NotFoundError):
        publish(caller.organisation, "session", "completed", {}, key=caller.key_id, store=store, queue=queue_box)


# -- keys and the organisation ---------------------------------------------------------------


def test_update_key_other_organisations_config_is_invalid_parameter(
    services: FakeServices, caller: Principal, store: Store
) -> None:
    other_org = admin.create_organisation(store.organisations, "Other")["id"]
    other_caller = Principal(key_id=caller.key_id, organisation=other_org, state=KeyState.ACTIVE)
    foreign = config_cases.create_config(services, other_caller, {"url": URL})
    key, _ = admin.create_key(store.organisations, caller.organisation)

    with pytest.raises(InvalidParameterError):
        tenant_cases.update_key(services, caller, key["id"], {"webhook_config": foreign["id"]})


def test_update_organisation_deactivated_config_is_invalid_state(services: FakeServices, caller: Principal) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    config_cases.delete_config(services, caller, config["id"])

    with pytest.raises(InvalidStateError):
        tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})


def test_get_organisation_state_is_active_only_with_a_valid_config(
    services: FakeServices, caller: Principal, store: Store
) -> None:
    config_cases.create_config(services, caller, {"url": URL})
    before = tenant_cases.get_organisation(services, caller)
    valid_config(services, caller, store)
    after = tenant_cases.get_organisation(services, caller)

    assert before["state"] == "unconfigured"
    assert after["state"] == "active"
    assert after["webhook_configs"]["resource"] == "list"
    assert after["webhook_configs"]["total_count"] == 2
