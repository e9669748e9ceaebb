"""Hostile input that once raised instead of ending in an answer: a receiver's `Retry-After`,
a list's `limit`, signatures a receiver checks, and an attempt claimed and then lost."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import pytest

from tests.unit.support import FakeClock, FakeSender, FakeServices, http_event, load_function, response_body
from webhook_service.domain.delivery import DeliveryResult
from webhook_service.domain.retries import RETRY_DELAYS
from webhook_service.domain.tenants import Principal
from webhook_service.errors import DependencyError, InvalidParameterError
from webhook_service.events import publish
from webhook_service.httpcodes import delay_for_answer, parse_retry_after
from webhook_service.jobs.deliverer import Deliverer
from webhook_service.jobs.dispatch import handle_job
from webhook_service.service import configs as config_cases
from webhook_service.service import tenants as tenant_cases
from webhook_service.signing import SignatureError, signature_headers, verify_ricloud, verify_standard
from webhook_service.storage.store import Store
from webhook_service.validation import parse_list_query

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
CAP = RETRY_DELAYS[-1]
URL = "https://receiver.example/hooks/"
LIST_TASKS = load_function("list_tasks")

# -- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("99999999999999", CAP),  # past timedelta's range: read as "longer than we ever wait"
        ("9" * 20, CAP),
        ("10800", CAP),
        ("10801", CAP),
        ("120", dt.timedelta(seconds=120)),
        (" 120 ", dt.timedelta(seconds=120)),
        ("Fri, 31 Dec 9999 23:59:59 GMT", CAP),  # an HTTP-date far ahead
        ("Fri, 27 Nov 2026 12:30:00 GMT", dt.timedelta(minutes=30)),
        ("Fri, 27 Nov 2026 11:00:00 GMT", dt.timedelta(0)),  # in the past: now
        ("Mon, 01 Jan 0001 00:00:00 +2359", dt.timedelta(0)),
    ],
)
def test_parse_retry_after_readable_value_is_a_delay_capped_at_the_schedule(value: str, expected: dt.timedelta) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        "-5",
        "9" * 5000,  # more digits than int() takes
        "1" + " " * 4998 + "2",  # 5,000 characters
        "x" * 100_000,
        "1e3",
        "\u0663",  # an Arabic-Indic digit: isdigit() but not delta-seconds
        "120 seconds",
        "Fri, 31 Dec 99999 23:59:59 GMT",
        "Fri, 31 Dec 9999 23:59:59 -9999",
        "\x00\xff",
        "",
    ],
)
def test_parse_retry_after_unreadable_value_is_ignored(value: str) -> None:
    assert parse_retry_after(value, NOW) is None


def test_next_attempt_delay_huge_retry_after_waits_the_longest_delay() -> None:
    delay = delay_for_answer(1, 503, parse_retry_after("99999999999999", NOW), jitter=0.0)

    assert delay == CAP


# -- list limits -------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["1" * 4301, "0" * 5000 + "5", "9" * 20, "1" * 1_000_000])
def test_parse_list_query_limit_of_many_digits_is_invalid_parameter(limit: str) -> None:
    with pytest.raises(InvalidParameterError) as raised:
        parse_list_query({"limit": limit}, {})

    assert raised.value.params == {"limit": "must be 1..1000"}


def test_list_tasks_handler_limit_of_4301_digits_answers_400(
    installed_services: FakeServices, organisation: str
) -> None:
    from webhook_service import admin

    token = admin.create_key(installed_services.store.organisations, organisation)[1]

    response = LIST_TASKS.handler(http_event("GET", "/tasks", token=token, query={"limit": "1" * 4301}), None)

    assert response["statusCode"] == 400
    assert response_body(response)["params"] == {"limit": "must be 1..1000"}


# -- the verify helpers ------------------------------------------------------------------------

SECRET = "whsec_" + "A" * 43 + "="
BODY = b'{"id":"e1"}'


def good_headers(timestamp: int = 1_795_810_836) -> dict[str, str]:
    return signature_headers(SECRET, "e1", BODY, timestamp=timestamp)


@pytest.mark.parametrize(
    "header",
    [
        "t=1795810836,s=\u00e9\u00e9\u00e9",  # non-ASCII signature: compare_digest raised TypeError
        "t=1795810836,s=\ud800",
        "t=\u0661\u0667\u0669,s=abc",  # non-ASCII digits
        "t=" + "9" * 4000 + ",s=abc",  # an int too large for a float
        "t=" + "9" * 5000 + ",s=abc",
        "t=1795810836,s=" + "a" * 1_000_000,
        "t=1795810836",
        "s=abc",
        "",
        "t=-1,s=abc",
        "t=1_795_810_836,s=abc",
        ",,,,",
    ],
)
def test_verify_ricloud_bad_header_raises_signature_error_only(header: str) -> None:
    with pytest.raises(SignatureError):
        verify_ricloud(BODY, header, SECRET, now=1_795_810_836)


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-signature": "v1,\u00e9\u00e9"},
        {"webhook-signature": "v1,\ud800"},
        {"webhook-timestamp": "9" * 4000},
        {"webhook-timestamp": "\u0661\u0662"},
        {"webhook-timestamp": "+1795810836"},
        {"webhook-id": "\ud800"},
        {"webhook-signature": "v1," + "a" * 1_000_000},
        {"webhook-signature": " ".join(["v1,abc"] * 100_000)},
        {"webhook-signature": ""},
        {"webhook-id": None},
    ],
)
def test_verify_standard_bad_headers_raise_signature_error_only(change: dict[str, Any]) -> None:
    headers: dict[str, Any] = {**good_headers(), **change}
    headers = {k: v for k, v in headers.items() if v is not None}

    with pytest.raises(SignatureError):
        verify_standard(BODY, headers, SECRET, now=1_795_810_836)


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_\u00e9", "whsec_\ud800", "whsec_A", ""])
def test_verify_helpers_bad_secret_raise_signature_error_only(secret: str) -> None:
    headers = good_headers()

    with pytest.raises(SignatureError):
        verify_standard(BODY, headers, secret, now=1_795_810_836)
    with pytest.raises(SignatureError):
        verify_ricloud(BODY, headers["Ricloud-Signature"], secret, now=1_795_810_836)


@pytest.mark.parametrize("headers", [{b"webhook-id": b"e1"}, {"webhook-id": b"e1", "webhook-timestamp": 1}, 7, None])
def test_verify_standard_headers_of_the_wrong_types_raise_signature_error(headers: Any) -> None:
    with pytest.raises(SignatureError):
        verify_standard(BODY, headers, SECRET, now=1_795_810_836)


def test_verify_helpers_still_accept_a_good_delivery() -> None:
    headers = good_headers()

    verify_standard(BODY, headers, SECRET, now=1_795_810_836)
    verify_ricloud(BODY, headers["Ricloud-Signature"], SECRET, now=1_795_810_836)


# -- a claimed attempt is always recorded ------------------------------------------------------


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, job: dict[str, Any], delay_seconds: int = 0) -> str:
        self.sent.append((job, delay_seconds))
        return "m"


class RetryAfterSender(FakeSender):
    """Answers `status` with a `Retry-After` header."""

    def __init__(self, status: int, retry_after: str) -> None:
        super().__init__(status=status)
        self.retry_after = retry_after

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryResult:
        result = super().post(url, body, headers)
        return DeliveryResult(
            error=result.error,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            response_excerpt=result.response_excerpt,
            retry_after=self.retry_after,
        )


class CrashingSender(FakeSender):
    """A sender with a bug: it raises."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryResult:
        raise RuntimeError("a bug in the sender")


def event_ready(services: FakeServices, caller: Principal, store: Store, queue: RecordingQueue) -> str:
    """A published event whose organisation default is a valid config; its first job queued."""
    config = config_cases.create_config(services, caller, {"url": URL})
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    store.configs.replace(stored.__class__(**{**stored.__dict__, "state": "valid"}), stored.version, None)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    return publish(caller.organisation, "session", "completed", {"id": "s1"}, store=store, queue=queue).id


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [
        ("99999999999999", int(CAP.total_seconds())),
        ("Fri, 31 Dec 9999 23:59:59 GMT", int(CAP.total_seconds())),
        ("9" * 5000, 60),  # unreadable: the schedule's own delay
        ("-5", 60),
    ],
)
def test_event_attempt_with_a_hostile_retry_after_is_recorded_and_retried(
    services: FakeServices, caller: Principal, store: Store, clock: FakeClock, retry_after: str, delay: int
) -> None:
    queue = RecordingQueue()
    deliverer = Deliverer(
        store=store, sender=RetryAfterSender(503, retry_after), queue=queue, clock=clock, jitter=lambda: 0.0
    )
    event_id = event_ready(services, caller, store, queue)
    job, _ = queue.sent.pop()

    outcome = handle_job(deliverer, json.dumps(job))

    assert outcome.name == "retrying"
    event = services.store.events.get(caller.organisation, event_id)
    assert event is not None
    assert (event.state, event.attempts, event.error) == ("pending", 1, "webhook-response-status")
    assert [(job["attempt"], wait) for job, wait in queue.sent] == [(2, delay)]


def test_event_attempt_whose_sender_raises_is_recorded_not_stranded(
    services: FakeServices, caller: Principal, store: Store, clock: FakeClock
) -> None:
    queue = RecordingQueue()
    deliverer = Deliverer(store=store, sender=CrashingSender(), queue=queue, clock=clock, jitter=lambda: 0.0)
    event_id = event_ready(services, caller, store, queue)
    job, _ = queue.sent.pop()

    outcome = handle_job(deliverer, json.dumps(job))

    assert outcome.name == "retrying"
    event = store.events.get(caller.organisation, event_id)
    assert event is not None
    assert (event.state, event.attempts, event.error) == ("pending", 1, "internal-error")
    assert event.next_attempt_at is not None
    ((next_job, delay),) = queue.sent
    assert (next_job["attempt"], delay) == (2, 60)
    # The job run again (SQS at least once) re-queues the next attempt; it never sends twice.
    assert handle_job(deliverer, json.dumps(job)).name == "duplicate"


def test_event_attempt_whose_recording_fails_gives_its_claim_back_and_is_made_again(
    services: FakeServices, caller: Principal, store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = RecordingQueue()
    sender = FakeSender(status=200)
    deliverer = Deliverer(store=store, sender=sender, queue=queue, clock=clock, jitter=lambda: 0.0)
    event_id = event_ready(services, caller, store, queue)
    job, _ = queue.sent.pop()

    def storage_down(event: Any, attempt: Any = None) -> bool:
        raise DependencyError("dynamodb put failed: InternalServerError")

    with monkeypatch.context() as patched:
        patched.setattr(store.events, "save", storage_down)
        with pytest.raises(DependencyError):
            handle_job(deliverer, json.dumps(job))
    released = store.events.get(caller.organisation, event_id)

    assert released is not None
    assert (released.state, released.attempts, released.claimed_until) == ("pending", 0, None)
    # SQS delivers the job again: the attempt is made at once, not dropped as claimed.
    assert handle_job(deliverer, json.dumps(job)).name == "delivered"
    assert len(sender.sent) == 2


def test_event_attempt_whose_next_job_cannot_be_queued_is_made_again_and_recorded_once(
    services: FakeServices, caller: Principal, store: Store, clock: FakeClock
) -> None:
    class QueueDownOnce(RecordingQueue):
        failed = False

        def send(self, job: dict[str, Any], delay_seconds: int = 0) -> str:
            if job.get("attempt") == 2 and not self.failed:
                self.failed = True
                raise DependencyError("sqs send failed: InternalError")
            return super().send(job, delay_seconds)

    queue = QueueDownOnce()
    sender = FakeSender(status=500)
    deliverer = Deliverer(store=store, sender=sender, queue=queue, clock=clock, jitter=lambda: 0.0)
    event_id = event_ready(services, caller, store, queue)
    job, _ = queue.sent.pop()

    # The next attempt's job is sent before the outcome is written: when it cannot be, nothing
    # is written, the claim is given back, and the job fails (SQS delivers it again).
    with pytest.raises(DependencyError):
        handle_job(deliverer, json.dumps(job))
    unrecorded = store.events.get(caller.organisation, event_id)
    assert unrecorded is not None
    assert (unrecorded.attempts, unrecorded.claimed_until) == (0, None)

    assert handle_job(deliverer, json.dumps(job)).name == "retrying"  # the job again: attempt 1 made again
    recorded = store.events.get(caller.organisation, event_id)
    assert recorded is not None
    assert (recorded.attempts, recorded.error, recorded.claimed_until) == (1, "webhook-response-status", None)
    assert len(sender.sent) == 2
    assert [job["attempt"] for job, _ in queue.sent] == [2]  # and the next attempt is queued once
