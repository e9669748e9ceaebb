"""The deliver function's use cases: run a config's test task, and deliver an event with
retries.

A receiver's failure is an outcome to record, never an exception. Only our own failures
(storage) raise, so that SQS delivers the job again.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from webhook_service import jsontext
from webhook_service.delivery import DeliveryResult, Sender, default_ssl_context, delivery_url
from webhook_service.domain import (
    GONE_STATUS,
    MAX_ATTEMPTS,
    UNCONFIGURED,
    Event,
    WebhookConfig,
    config_state_after_test,
    config_test_event,
    is_stale,
    new_id,
    next_attempt_delay,
    parse_retry_after,
    route,
    superseded,
)
from webhook_service.logs import logger
from webhook_service.queue import JobQueue, event_job
from webhook_service.settings import get_settings
from webhook_service.signing import signature_headers
from webhook_service.storage import Store
from webhook_service.timefmt import utcnow

INTERNAL_ERROR = "internal-error"  # an attempt that failed on our side, not the receiver's
EARLY_TOLERANCE_SECONDS = 1  # SQS delays are whole seconds: a job this early is on time


@dataclass(frozen=True)
class Outcome:
    """How a job ended, for logs and metrics: its kind (`test` or `event`), the outcome's
    name, and how long the receiver took when something was sent."""

    kind: str
    name: str
    duration_ms: int | None = None

    @property
    def failed_for_good(self) -> bool:
        return self.kind == "event" and self.name in ("failed", UNCONFIGURED)


class BadJobError(Exception):
    """A queue message this function cannot read: a bug upstream, left for the DLQ."""


def _random_jitter() -> float:
    return random.uniform(-1.0, 1.0)  # spreading retries, not security


@dataclass
class Deliverer:
    store: Store
    sender: Sender
    queue: JobQueue
    clock: Callable[[], dt.datetime] = field(default=utcnow)
    jitter: Callable[[], float] = field(default=_random_jitter)


_deliverer: Deliverer | None = None


def get_deliverer() -> Deliverer:
    """The process-wide deliverer, made on first use; its session outlives invocations."""
    global _deliverer
    if _deliverer is None:
        settings = get_settings()
        _deliverer = Deliverer(
            store=Store(settings.table_name),
            queue=JobQueue(settings.queue_url),
            sender=Sender(
                allow_private=settings.allow_private_targets,
                connect_timeout=settings.delivery_connect_timeout,
                total_timeout=settings.delivery_timeout,
                ssl_context=lambda: default_ssl_context(settings.delivery_ca_bundle),
                loopback_only=settings.delivery_loopback_only,
            ),
        )
    return _deliverer


def set_deliverer(deliverer: Deliverer | None) -> None:
    global _deliverer
    _deliverer = deliverer


def event_body(event: Event) -> bytes:
    """The event resource as compact JSON: serialized once; these bytes are signed and sent."""
    return jsontext.dumps(event.to_resource()).encode("utf-8")


def parse_job(body: str) -> dict[str, Any]:
    try:
        job = json.loads(body)
    except ValueError:
        raise BadJobError("the message is not JSON") from None
    if not isinstance(job, dict) or not isinstance(job.get("organisation"), str):
        raise BadJobError("the message is not a known job")
    if job.get("job") == "test" and isinstance(job.get("task"), str):
        return job
    if job.get("job") == "event" and isinstance(job.get("event"), str) and isinstance(job.get("attempt"), int):
        return job
    raise BadJobError("the message is not a known job")


def handle_job(deliverer: Deliverer, body: str) -> Outcome:
    job = parse_job(body)
    if job["job"] == "test":
        return run_test(deliverer, job["organisation"], job["task"], job.get("config"))
    return run_event(deliverer, job["organisation"], job["event"], job["attempt"], job.get("not_before"))


def run_test(deliverer: Deliverer, organisation: str, task_id: str, config_id: str | None = None) -> Outcome:
    """Run one test task to its end. Returns the outcome, for logs and metrics:
    `succeeded`, `failed`, `superseded`, `stale` (sent, but the config had changed),
    `duplicate` (already ended) or `missing`."""
    store = deliverer.store
    if config_id is not None:  # one read for both (jobs name the config since 0.1.0)
        task, config = store.get_task_and_config(organisation, task_id, config_id)
    else:
        task, config = store.get_task(organisation, task_id), None
    if task is None:
        logger.warning("test task not found", extra={"task_id": task_id})
        return Outcome("test", "missing")
    if task.ended:
        logger.info("test task already ended", extra={"task_id": task_id, "state": task.state})
        return Outcome("test", "duplicate")
    if config_id != task.target:  # an older job that did not name the config, or named another
        config = store.get_config(organisation, task.target)
    if is_stale(task, config):
        ended = store.end_task(superseded(task, deliverer.clock()))
        logger.info("test superseded", extra={"task_id": task_id, "config_id": task.target})
        return Outcome("test", "superseded" if ended else "duplicate")
    assert config is not None
    started = store.start_task(task, new_id(), deliverer.clock())
    if started is None or started.event_id is None or started.date_started is None:
        return Outcome("test", "duplicate")
    task = started
    # The event is made from what the first start fixed (its id and date) and the config at
    # the task's version, so a job run again sends the same bytes; it is stored with the
    # outcome, in the same write.
    event = config_test_event(task, config, started.event_id, started.date_started)
    body = event_body(event)
    result = deliverer.sender.post(
        delivery_url(config.url, event.id), body, signature_headers(config.secret, event.id, body)
    )
    outcome = _record(deliverer, config, task, event, result)
    log = logger.info if result.ok else logger.warning
    log(
        "test delivered" if result.ok else "test failed",
        extra={
            "task_id": task.id,
            "config_id": config.id,
            "event_id": event.id,
            "status_code": result.status_code,
            "duration_ms": result.duration_ms,
            "error": result.error,
            "write_back": outcome,
        },
    )
    if outcome == "applied":
        return Outcome("test", "succeeded" if result.ok else "failed", result.duration_ms)
    return Outcome("test", outcome, result.duration_ms)


def _record(deliverer: Deliverer, config: Any, task: Any, event: Event, result: DeliveryResult) -> str:
    now = deliverer.clock()
    finished_task = replace(
        task,
        state="succeeded" if result.ok else "failed",
        error=result.error,
        result=result.as_task_result(),
        date_completed=now,
    )
    finished_event = replace(
        event,
        state="delivered" if result.ok else "failed",
        error=result.error,
        attempts=1,
        date_delivered=now,
    )
    return deliverer.store.record_test_outcome(
        config, config_state_after_test(result.ok), finished_task, finished_event
    )


def run_event(deliverer: Deliverer, organisation: str, event_id: str, attempt: int, not_before: int | None) -> Outcome:
    """Make attempt `attempt` of an event's delivery. Returns the outcome, for logs and
    metrics: `delivered`, `retrying`, `failed`, `unconfigured`, `waiting` (a hop of a long
    delay), `duplicate` or `missing`."""
    store, now = deliverer.store, deliverer.clock()
    if not_before is not None and now.timestamp() < not_before - EARLY_TOLERANCE_SECONDS:
        wait = math.ceil(not_before - now.timestamp())
        deliverer.queue.send(event_job(event_id, organisation, attempt, not_before), delay_seconds=wait)
        return Outcome("event", "waiting")
    event = store.get_event(organisation, event_id)
    if event is None:
        logger.warning("event not found", extra={"event_id": event_id})
        return Outcome("event", "missing")
    if event.ended:
        return Outcome("event", "duplicate")
    if event.attempts >= attempt:
        # This attempt was made, but its job ended before the next one was queued (or this
        # is a copy of the job). Queue the next one again: a second copy cannot claim it twice.
        if event.attempts == attempt and event.next_attempt_at is not None:
            wait = math.ceil(event.next_attempt_at - deliverer.clock().timestamp())
            _queue_attempt(deliverer, event, attempt + 1, event.next_attempt_at, wait)
        return Outcome("event", "duplicate")
    config = _route(store, event)
    claimed = store.claim_event_attempt(event, attempt, config.id if config else event.webhook_config)
    if claimed is None:
        return Outcome("event", "duplicate")
    event = claimed
    if config is None or config.state != "valid":
        store.save_event(replace(event, state="failed", error=UNCONFIGURED, date_delivered=deliverer.clock()))
        logger.warning("event unconfigured", extra={"event_id": event.id, "config_id": event.webhook_config})
        return Outcome("event", UNCONFIGURED)

    # From the claim on, every way out records the attempt: the sender never raises, and a
    # bug of ours while sending becomes an `internal-error` attempt, retried on the schedule.
    # Only a storage failure while recording raises (SQS then runs the job again).
    result = _attempt(deliverer, event, config)
    now = deliverer.clock()
    delay = (
        None
        if result.ok
        else next_attempt_delay(
            attempt, result.status_code, parse_retry_after(result.retry_after, now), deliverer.jitter()
        )
    )
    _log_attempt(event, config, attempt, result, delay)
    if result.ok:
        store.save_event(replace(event, state="delivered", error=None, date_delivered=now))
        return Outcome("event", "delivered", result.duration_ms)
    if result.status_code == GONE_STATUS:
        store.invalidate_config(config)
    if delay is None:
        store.save_event(replace(event, state="failed", error=result.error, date_delivered=now))
        return Outcome("event", "failed", result.duration_ms)
    due = math.ceil((now + delay).timestamp())
    if store.save_event(replace(event, error=result.error, next_attempt_at=due)):
        _queue_attempt(deliverer, event, attempt + 1, due, math.ceil(delay.total_seconds()))
    return Outcome("event", "retrying", result.duration_ms)


def _attempt(deliverer: Deliverer, event: Event, config: WebhookConfig) -> DeliveryResult:
    """Send attempt of a claimed event; what raises here is our own failure, made an outcome
    so that the claim is recorded, never stranded."""
    started = time.monotonic()
    try:
        body = event_body(event)
        return deliverer.sender.post(
            delivery_url(config.url, event.id), body, signature_headers(config.secret, event.id, body)
        )
    except Exception:
        logger.exception("event attempt failed on our side", extra={"event_id": event.id, "config_id": config.id})
        return DeliveryResult(
            error=INTERNAL_ERROR,
            status_code=None,
            duration_ms=int((time.monotonic() - started) * 1000),
            response_excerpt="",
        )


def _route(store: Store, event: Event) -> WebhookConfig | None:
    key = store.get_key(event.organisation, event.key) if event.key else None
    organisation = store.get_organisation(event.organisation)
    target = route(
        key.get("webhook_config") if key else None,
        organisation.get("webhook_config_default") if organisation else None,
    )
    return store.get_config(event.organisation, target) if target else None


def _queue_attempt(deliverer: Deliverer, event: Event, attempt: int, due: int, wait: int) -> None:
    deliverer.queue.send(event_job(event.id, event.organisation, attempt, due), delay_seconds=max(0, wait))


def _log_attempt(
    event: Event, config: WebhookConfig, attempt: int, result: DeliveryResult, delay: dt.timedelta | None
) -> None:
    extra = {
        "event_id": event.id,
        "config_id": config.id,
        "attempt": attempt,
        "max_attempts": MAX_ATTEMPTS,
        "status_code": result.status_code,
        "duration_ms": result.duration_ms,
        "error": result.error,
        "next_attempt_in_s": int(delay.total_seconds()) if delay else None,
    }
    (logger.info if result.ok else logger.warning)("event attempt", extra=extra)
