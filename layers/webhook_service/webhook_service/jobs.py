"""The deliver function's use cases: run a config's test task, and deliver an event with
retries.

A receiver's failure is an outcome to record, never an exception. Only our own failures
(storage) raise, so that SQS delivers the job again.

Jobs run in lanes (docs/isolation.md). In the fast lanes (`events`, `tests`) a receiver gets
`fast_timeout` (2 s) to answer; one that has not answered by then is cut, its endpoint is
marked slow (`slow_until` on the config, which every job reads anyway) and the job moves to
the slow lane, where it gets the whole delivery timeout. A job for an endpoint marked slow is
moved there before anything is sent. An attempt that ends within `fast_timeout` clears the
mark; one that takes longer renews it.
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
from webhook_service.domain import (
    CUT_EXCERPT,
    MAX_ATTEMPTS,
    SLOW_MARK_SECONDS,
    UNCONFIGURED,
    Attempt,
    Event,
    EventState,
    Key,
    Organisation,
    TaskState,
    WebhookConfig,
    config_state_after_test,
    config_test_event,
    is_stale,
    new_attempt,
    new_id,
    route,
    superseded,
)
from webhook_service.httpcodes import is_gone, next_attempt_delay, parse_retry_after
from webhook_service.jobqueue import JobQueue, JobSender, Lane, Lanes, config_test_job, event_job, job_lane
from webhook_service.logs import logger
from webhook_service.ports import DeliveryClient
from webhook_service.sender import TIMEOUT, DeliveryResult, Sender, default_ssl_context, delivery_url
from webhook_service.settings import get_settings
from webhook_service.signing import signature_headers
from webhook_service.storage import Store, event_expires_at
from webhook_service.timefmt import utcnow

INTERNAL_ERROR = "internal-error"  # an attempt that failed on our side, not the receiver's
EARLY_TOLERANCE_SECONDS = 1  # SQS delays are whole seconds: a job this early is on time
STORAGE_RESERVE_SECONDS = 5.0  # what a job's reads and writes may take around its request
CLAIM_SECONDS = 60  # an attempt's claim when the job does not know its invocation's time left


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
    """What the jobs need. `queue` is the events lane (retries and hops go there);
    `test_queue` and `slow_queue` the other lanes (the events lane's queue when None). With
    no slow lane, nothing is cut or moved: every job gets `sender`, the whole timeout."""

    store: Store
    sender: DeliveryClient
    queue: JobSender
    clock: Callable[[], dt.datetime] = field(default=utcnow)
    jitter: Callable[[], float] = field(default=_random_jitter)
    test_queue: JobSender | None = None
    slow_queue: JobSender | None = None
    fast_sender: DeliveryClient | None = None  # the fast lanes' sender, cut at `fast_timeout`
    fast_timeout: float = 2.0
    delivery_timeout: float = 15.0  # `sender`'s
    storage_reserve: float = STORAGE_RESERVE_SECONDS
    retry_scale: float = 1.0  # the retry schedule's waits times this (local test stacks only)

    @property
    def lanes(self) -> Lanes:
        return Lanes(events=self.queue, tests=self.test_queue, slow=self.slow_queue)

    def sender_for(self, lane: Lane) -> DeliveryClient:
        if lane is not Lane.SLOW and self.fast_sender is not None and self.slow_queue is not None:
            return self.fast_sender
        return self.sender

    def budget(self, lane: Lane) -> float:
        """The seconds a job of `lane` needs in the worst case: its request and its storage."""
        fast = self.sender_for(lane) is self.fast_sender and self.fast_sender is not None
        return (self.fast_timeout if fast else self.delivery_timeout) + self.storage_reserve


_deliverer: Deliverer | None = None


def get_deliverer() -> Deliverer:
    """The process-wide deliverer, made on first use; its session outlives invocations."""
    global _deliverer
    if _deliverer is None:
        settings = get_settings()

        def sender(total_timeout: float) -> Sender:
            return Sender(
                allow_private=settings.allow_private_targets,
                connect_timeout=min(settings.delivery_connect_timeout, total_timeout),
                total_timeout=total_timeout,
                ssl_context=lambda: default_ssl_context(settings.delivery_ca_bundle),
                loopback_only=settings.delivery_loopback_only,
            )

        own_slow_lane = settings.slow_queue_url not in ("", settings.queue_url)
        leash = own_slow_lane and settings.fast_lane_timeout < settings.delivery_timeout
        _deliverer = Deliverer(
            store=Store(settings.table_name, routing_cache_seconds=settings.routing_cache_seconds),
            queue=JobQueue(settings.queue_url),
            test_queue=JobQueue(settings.test_queue_url) if settings.test_queue_url != settings.queue_url else None,
            slow_queue=JobQueue(settings.slow_queue_url) if own_slow_lane else None,
            sender=sender(settings.delivery_timeout),
            fast_sender=sender(settings.fast_lane_timeout) if leash else None,
            fast_timeout=settings.fast_lane_timeout,
            delivery_timeout=settings.delivery_timeout,
            retry_scale=settings.retry_delay_scale,
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
    if (
        job.get("job") == "event"
        and isinstance(job.get("event"), str)
        and isinstance(job.get("attempt"), int)
        and isinstance(job.get("key"), str | None)
        and isinstance(job.get("round", 0), int)
    ):
        return job
    raise BadJobError("the message is not a known job")


def handle_job(
    deliverer: Deliverer, body: str, lane: Lane | None = None, time_left: Callable[[], float] | None = None
) -> Outcome:
    """Run one job that arrived in `lane` (None: its fast lane). `time_left` gives the
    seconds left in the invocation, which bound how long an attempt's claim holds."""
    job = parse_job(body)
    lane = lane or job_lane(job)
    if job["job"] == "test":
        return run_test(deliverer, job["organisation"], job["task"], job.get("config"), lane)
    return run_event(
        deliverer,
        job["organisation"],
        job["event"],
        job["attempt"],
        job.get("not_before"),
        lane,
        time_left,
        routing_key=(job["key"],) if "key" in job else None,
        round_=job.get("round", 0),
    )


def _moves_to_slow_lane(deliverer: Deliverer, lane: Lane, config: WebhookConfig) -> bool:
    """A fast-lane job for an endpoint marked slow goes to the slow lane unsent."""
    return lane is not Lane.SLOW and deliverer.slow_queue is not None and config.is_slow(deliverer.clock())


def _was_cut(deliverer: Deliverer, lane: Lane, result: DeliveryResult) -> bool:
    """The fast lane's sender gave up before the receiver answered: not an outcome."""
    leashed = deliverer.sender_for(lane) is deliverer.fast_sender and deliverer.fast_sender is not None
    return leashed and result.error == TIMEOUT and result.status_code is None


def _mark_slow(deliverer: Deliverer, config: WebhookConfig) -> None:
    """Mark the endpoint slow for SLOW_MARK_SECONDS; nothing is written while the mark it
    had when the job read it has more than half its time to run (a slow endpoint's config
    item must not take a write per delivery)."""
    now = deliverer.clock().timestamp()
    if config.slow_until is not None and config.slow_until >= now + SLOW_MARK_SECONDS / 2:
        return
    until = math.ceil(now) + SLOW_MARK_SECONDS
    deliverer.store.mark_slow(config, until)
    logger.info("endpoint marked slow", extra={"config_id": config.id, "slow_until": until})


def _note_speed(deliverer: Deliverer, config: WebhookConfig, result: DeliveryResult) -> None:
    """Renew the slow mark after an attempt that took longer than the fast lanes wait;
    clear it after one that did not. Nothing is written for an endpoint that stays fast."""
    if deliverer.slow_queue is None:
        return
    if result.duration_ms >= deliverer.fast_timeout * 1000:
        _mark_slow(deliverer, config)
    elif config.slow_until is not None:
        deliverer.store.clear_slow(config)
        logger.info("endpoint fast again", extra={"config_id": config.id})


def run_test(
    deliverer: Deliverer, organisation: str, task_id: str, config_id: str | None = None, lane: Lane = Lane.TESTS
) -> Outcome:
    """Run one test task to its end. Returns the outcome, for logs and metrics:
    `succeeded`, `failed`, `superseded`, `stale` (sent, but the config had changed),
    `duplicate` (already ended), `missing`, or `slow-lane` (moved to the slow lane)."""
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
    if _moves_to_slow_lane(deliverer, lane, config):
        deliverer.lanes.queue(Lane.SLOW).send(config_test_job(task.id, organisation, config.id))
        return Outcome("test", "slow-lane")
    started = store.start_task(task, new_id(), deliverer.clock())
    if started is None or started.event_id is None or started.date_started is None:
        return Outcome("test", "duplicate")
    task = started
    # The event is made from what the first start fixed (its id and date) and the config at
    # the task's version, so a job run again sends the same bytes; it is stored with the
    # outcome, in the same write.
    event = config_test_event(task, config, started.event_id, started.date_started)
    body = event_body(event)
    url = delivery_url(config.url, event.id)
    result = deliverer.sender_for(lane).post(url, body, _signed(deliverer, config, event.id, body))
    if _was_cut(deliverer, lane, result):
        # The task stays `processing`; its job, run again in the slow lane, sends the same
        # event. The request was sent all the same: it is an attempt, not counted.
        if not store.record_cut_test(task, _cut_attempt(deliverer, event, config, url, result)):
            return Outcome("test", "duplicate", result.duration_ms)
        _mark_slow(deliverer, config)
        deliverer.lanes.queue(Lane.SLOW).send(config_test_job(task.id, organisation, config.id))
        logger.info("test moved to the slow lane", extra={"task_id": task.id, "config_id": config.id})
        return Outcome("test", "slow-lane", result.duration_ms)
    _note_speed(deliverer, config, result)
    outcome = _record(deliverer, config, task, event, result, url)
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


def _record(deliverer: Deliverer, config: Any, task: Any, event: Event, result: DeliveryResult, url: str) -> str:
    now = deliverer.clock()
    finished_task = replace(
        task,
        state=TaskState.SUCCEEDED if result.ok else TaskState.FAILED,
        error=result.error,
        result=result.as_task_result(),
        date_completed=now,
    )
    finished_event = replace(
        event,
        state=EventState.DELIVERED if result.ok else EventState.FAILED,
        error=result.error,
        attempts=1,
        date_delivered=now,
    )
    attempt = _attempt_record(event, config, url, result, now)
    return deliverer.store.record_test_outcome(
        config, config_state_after_test(result.ok), finished_task, finished_event, attempt
    )


def _signed(deliverer: Deliverer, config: WebhookConfig, message_id: str, body: bytes) -> dict[str, str]:
    """The signature headers of a delivery: with the config's secret, and with its previous
    one too while that still signs after a rotation (design.md §14)."""
    previous = config.previous_secret_at(deliverer.clock())
    return signature_headers(config.secret, message_id, body, previous_secret=previous)


def _attempt_record(event: Event, config: WebhookConfig, url: str, result: DeliveryResult, now: dt.datetime) -> Attempt:
    return new_attempt(
        event,
        config.id,
        url,
        result.status_code,
        result.error,
        result.duration_ms,
        result.response_excerpt,
        now,
        event_expires_at(event),
    )


def _cut_attempt(
    deliverer: Deliverer, event: Event, config: WebhookConfig, url: str, result: DeliveryResult
) -> Attempt:
    """The attempt of a request the fast lane cut: sent, unanswered in time, not counted."""
    return new_attempt(
        event,
        config.id,
        url,
        None,
        TIMEOUT,
        result.duration_ms,
        CUT_EXCERPT.format(seconds=deliverer.fast_timeout),
        deliverer.clock(),
        event_expires_at(event),
        counted=False,
    )


def run_event(
    deliverer: Deliverer,
    organisation: str,
    event_id: str,
    attempt: int,
    not_before: int | None,
    lane: Lane = Lane.EVENTS,
    time_left: Callable[[], float] | None = None,
    routing_key: tuple[str | None] | None = None,
    round_: int = 0,
) -> Outcome:
    """Make attempt `attempt` of an event's delivery, in round `round_` (how many resends
    came before the job was queued). Returns the outcome, for logs and
    metrics: `delivered`, `retrying`, `failed`, `unconfigured`, `waiting` (a hop of a long
    delay), `duplicate`, `missing`, or `slow-lane` (moved to the slow lane, no attempt used).
    `routing_key` is the event's key as its job names it (`(None,)`: no key); then the event,
    its key and its organisation are read in one request."""
    store, now = deliverer.store, deliverer.clock()
    if not_before is not None and now.timestamp() < not_before - EARLY_TOLERANCE_SECONDS:
        wait = math.ceil(not_before - now.timestamp())
        key = routing_key[0] if routing_key else None
        job = event_job(event_id, organisation, attempt, not_before, key=key, round_=round_)
        deliverer.queue.send(job, delay_seconds=wait)
        return Outcome("event", "waiting")
    routing: tuple[Key | None, Organisation | None] | None = None
    if routing_key is not None:
        event, key_item, organisation_item = store.get_routing(organisation, routing_key[0], event_id)
        if event is not None and event.key == routing_key[0]:
            routing = (key_item, organisation_item)
    else:
        event = store.get_event(organisation, event_id)
    if event is None:
        logger.warning("event not found", extra={"event_id": event_id})
        return Outcome("event", "missing")
    if event.ended or event.attempts > attempt or event.resends != round_:
        return Outcome("event", "duplicate")  # ended, moved on, or a job of an earlier round
    if event.attempts == attempt:
        if event.claimed_until is None:
            # This attempt was made, but its job ended before the next one was queued (or
            # this is a copy of the job). Queue the next one again: a copy cannot claim twice.
            if event.next_attempt_at is not None:
                wait = math.ceil(event.next_attempt_at - now.timestamp())
                _queue_attempt(deliverer, event, attempt + 1, event.next_attempt_at, wait)
            return Outcome("event", "duplicate")
        if event.claimed_until >= now.timestamp():
            return Outcome("event", "duplicate")  # another job is making this attempt
        # else: the job that claimed it was lost mid-attempt; its lease has run out
    config = _route(store, event, routing)
    if config is not None and config.state == "valid" and _moves_to_slow_lane(deliverer, lane, config):
        deliverer.lanes.queue(Lane.SLOW).send(_job(event, attempt))
        return Outcome("event", "slow-lane")
    # The claim holds no longer than this invocation can run: a job lost with it is taken
    # over by the next copy of the job once the claim has run out.
    now = deliverer.clock()
    lease = time_left() if time_left is not None else CLAIM_SECONDS
    claimed = store.claim_event_attempt(
        event,
        attempt,
        config.id if config else event.webhook_config,
        math.floor(now.timestamp()),
        math.ceil(now.timestamp() + lease),
    )
    if claimed is None:
        return Outcome("event", "duplicate")
    event = claimed
    # From the claim on, every way out records the attempt or gives the claim back: the
    # sender never raises, a bug of ours while sending is an `internal-error` attempt, and
    # whatever else raises (a storage or queue failure) first releases the claim, so that
    # the job's next copy makes the attempt at once instead of finding it claimed.
    try:
        return _use_claim(deliverer, event, config, attempt, lane)
    except BaseException:
        _give_back(store, event)
        raise


def _use_claim(deliverer: Deliverer, event: Event, config: WebhookConfig | None, attempt: int, lane: Lane) -> Outcome:
    """Make the claimed attempt `attempt` of `event` and record it."""
    store = deliverer.store
    if config is None or config.state != "valid":
        store.save_event(replace(event, state=EventState.FAILED, error=UNCONFIGURED, date_delivered=deliverer.clock()))
        logger.warning("event unconfigured", extra={"event_id": event.id, "config_id": event.webhook_config})
        return Outcome("event", UNCONFIGURED)

    url = delivery_url(config.url, event.id)
    result = _attempt(deliverer, deliverer.sender_for(lane), event, config, url)
    if _was_cut(deliverer, lane, result):
        _mark_slow(deliverer, config)
        if not store.release_event_attempt(event, _cut_attempt(deliverer, event, config, url, result)):
            return Outcome("event", "duplicate", result.duration_ms)  # taken over meanwhile
        deliverer.lanes.queue(Lane.SLOW).send(_job(event, attempt))
        logger.info("event moved to the slow lane", extra={"event_id": event.id, "config_id": config.id})
        return Outcome("event", "slow-lane", result.duration_ms)
    _note_speed(deliverer, config, result)
    now = deliverer.clock()
    delay = (
        None
        if result.ok
        else next_attempt_delay(
            attempt, result.status_code, parse_retry_after(result.retry_after, now), deliverer.jitter()
        )
    )
    if delay is not None and deliverer.retry_scale != 1.0:
        delay *= deliverer.retry_scale
    _log_attempt(event, config, attempt, result, delay)
    record = _attempt_record(event, config, url, result, now)
    if result.ok:
        store.save_event(replace(event, state=EventState.DELIVERED, error=None, date_delivered=now), record)
        return Outcome("event", "delivered", result.duration_ms)
    if is_gone(result.status_code):
        store.invalidate_config(config)
    if delay is None:
        store.save_event(replace(event, state=EventState.FAILED, error=result.error, date_delivered=now), record)
        return Outcome("event", "failed", result.duration_ms)
    due = math.ceil((now + delay).timestamp())
    if store.save_event(replace(event, error=result.error, next_attempt_at=due), record):
        _queue_attempt(deliverer, event, attempt + 1, due, math.ceil(delay.total_seconds()))
    return Outcome("event", "retrying", result.duration_ms)


def _give_back(store: Store, event: Event) -> None:
    """Release a claim whose job is failing (a no-op when the attempt was recorded already:
    the release's condition no longer holds)."""
    try:
        released = store.release_event_attempt(event)
    except Exception:
        logger.exception("claim not released", extra={"event_id": event.id, "attempt": event.attempts})
        return
    if released:
        logger.warning("claim released after a failure", extra={"event_id": event.id, "attempt": event.attempts})


def _attempt(
    deliverer: Deliverer, sender: DeliveryClient, event: Event, config: WebhookConfig, url: str
) -> DeliveryResult:
    """Send attempt of a claimed event; what raises here is our own failure, made an outcome
    so that the claim is recorded, never stranded."""
    started = time.monotonic()
    try:
        body = event_body(event)
        return sender.post(url, body, _signed(deliverer, config, event.id, body))
    except Exception:
        logger.exception("event attempt failed on our side", extra={"event_id": event.id, "config_id": config.id})
        return DeliveryResult(
            error=INTERNAL_ERROR,
            status_code=None,
            duration_ms=int((time.monotonic() - started) * 1000),
            response_excerpt="",
        )


def _route(store: Store, event: Event, routing: tuple[Key | None, Organisation | None] | None) -> WebhookConfig | None:
    """The config an event goes to now, from its key and organisation (read already, or
    read here in one request)."""
    if routing is None:
        _, key, organisation = store.get_routing(event.organisation, event.key)
    else:
        key, organisation = routing
    target = route(
        key.webhook_config if key else None,
        organisation.webhook_config_default if organisation else None,
    )
    return store.get_routed_config(event.organisation, target) if target else None


def _job(event: Event, attempt: int, due: int | None = None) -> dict[str, Any]:
    return event_job(event.id, event.organisation, attempt, due, key=event.key, round_=event.resends)


def _queue_attempt(deliverer: Deliverer, event: Event, attempt: int, due: int, wait: int) -> None:
    deliverer.queue.send(_job(event, attempt, due), delay_seconds=max(0, wait))


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
