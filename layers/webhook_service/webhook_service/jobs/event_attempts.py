"""One attempt of an event's delivery: claimed before anything is sent, recorded with its
outcome, and the next attempt queued when one is due (docs/design.md §7.9-§7.11, §13)."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from webhook_service.domain.configs import ConfigState, WebhookConfig
from webhook_service.domain.delivery import INTERNAL_ERROR, DeliveryResult, delivery_url
from webhook_service.domain.events import UNCONFIGURED, Event, EventState, route
from webhook_service.domain.retries import MAX_ATTEMPTS
from webhook_service.domain.tenants import Key, Organisation
from webhook_service.httpcodes import delay_for_answer, is_gone, parse_retry_after
from webhook_service.jobs.deliverer import Deliverer, Outcome, attempt_record, event_body
from webhook_service.lanes import Lane, event_job
from webhook_service.logs import logger
from webhook_service.ports import DeliveryClient, Repositories

EARLY_TOLERANCE_SECONDS = 1  # SQS delays are whole seconds: a job this early is on time
CLAIM_SECONDS = 60  # an attempt's claim when the job does not know its invocation's time left

Routing = tuple[Key | None, Organisation | None]


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
    now = deliverer.clock()
    if not_before is not None and now.timestamp() < not_before - EARLY_TOLERANCE_SECONDS:
        key = routing_key[0] if routing_key else None
        job = event_job(event_id, organisation, attempt, not_before, key=key, round_=round_)
        deliverer.queue.send(job, delay_seconds=math.ceil(not_before - now.timestamp()))
        return Outcome("event", "waiting")
    event, routing = _read(deliverer.store, organisation, event_id, routing_key)
    if event is None:
        logger.warning("event not found", extra={"event_id": event_id})
        return Outcome("event", "missing")
    if not _attempt_open(deliverer, event, attempt, round_, now):
        return Outcome("event", "duplicate")
    config = _route(deliverer.store, event, routing)
    if config is not None and config.state == ConfigState.VALID and deliverer.moves_to_slow_lane(lane, config):
        deliverer.lanes.queue(Lane.SLOW).send(_job(event, attempt))
        return Outcome("event", "slow-lane")
    # The claim holds no longer than this invocation can run: a job lost with it is taken
    # over by the next copy of the job once the claim has run out.
    now = deliverer.clock()
    lease = time_left() if time_left is not None else CLAIM_SECONDS
    claimed = deliverer.store.events.claim_attempt(
        event,
        attempt,
        config.id if config else event.webhook_config,
        math.floor(now.timestamp()),
        math.ceil(now.timestamp() + lease),
    )
    if claimed is None:
        return Outcome("event", "duplicate")
    # From the claim on, every way out records the attempt or gives the claim back: the
    # sender never raises, a bug of ours while sending is an `internal-error` attempt, and
    # whatever else raises (a storage or queue failure) first releases the claim, so that
    # the job's next copy makes the attempt at once instead of finding it claimed.
    try:
        return _use_claim(deliverer, claimed, config, attempt, lane)
    except BaseException:
        _give_back(deliverer.store, claimed)
        raise


def _read(
    store: Repositories, organisation: str, event_id: str, routing_key: tuple[str | None] | None
) -> tuple[Event | None, Routing | None]:
    """The event, and its routing when the job named the event's key (read in the same
    request); None for the routing when it must be read apart."""
    if routing_key is None:
        return store.events.get(organisation, event_id), None
    event, key, organisation_found = store.routing.read(organisation, routing_key[0], event_id)
    if event is not None and event.key == routing_key[0]:
        return event, (key, organisation_found)
    return event, None


def _attempt_open(deliverer: Deliverer, event: Event, attempt: int, round_: int, now: dt.datetime) -> bool:
    """Whether attempt `attempt` of round `round_` may be claimed now: the event is open at
    that attempt and round, and no running claim holds it."""
    if event.ended or event.attempts > attempt or event.resends != round_:
        return False  # ended, moved on, or a job of an earlier round
    if event.attempts < attempt:
        return True
    if event.claimed_until is None:
        # This attempt was made, but its job ended before the next one was queued (or this
        # is a copy of the job). Queue the next one again: a copy cannot claim twice.
        if event.next_attempt_at is not None:
            wait = math.ceil(event.next_attempt_at - now.timestamp())
            _queue_attempt(deliverer, event, attempt + 1, event.next_attempt_at, wait)
        return False
    # Claimed: by a job still making it, or by one lost mid-attempt whose lease ran out.
    return event.claimed_until < now.timestamp()


def _use_claim(deliverer: Deliverer, event: Event, config: WebhookConfig | None, attempt: int, lane: Lane) -> Outcome:
    """Make the claimed attempt `attempt` of `event` and record it."""
    store = deliverer.store
    if config is None or config.state != ConfigState.VALID:
        store.events.save(replace(event, state=EventState.FAILED, error=UNCONFIGURED, date_delivered=deliverer.clock()))
        logger.warning("event unconfigured", extra={"event_id": event.id, "config_id": event.webhook_config})
        return Outcome("event", UNCONFIGURED)
    url = delivery_url(config.url, event.id)
    result = _attempt(deliverer, deliverer.sender_for(lane), event, config, url)
    if deliverer.was_cut(lane, result):
        deliverer.mark_slow(config)
        if not store.events.release_attempt(event, deliverer.cut_attempt(event, config, url, result)):
            return Outcome("event", "duplicate", result.duration_ms)  # taken over meanwhile
        deliverer.lanes.queue(Lane.SLOW).send(_job(event, attempt))
        logger.info("event moved to the slow lane", extra={"event_id": event.id, "config_id": config.id})
        return Outcome("event", "slow-lane", result.duration_ms)
    deliverer.note_speed(config, result)
    return _record(deliverer, event, config, attempt, url, result)


def _record(
    deliverer: Deliverer, event: Event, config: WebhookConfig, attempt: int, url: str, result: DeliveryResult
) -> Outcome:
    """Write the attempt with the event's new state; queue the next attempt when one is due."""
    store, now = deliverer.store, deliverer.clock()
    delay = None if result.ok else _retry_delay(deliverer, attempt, result, now)
    _log_attempt(event, config, attempt, result, delay)
    record = attempt_record(event, config, url, result, now)
    if result.ok:
        store.events.save(replace(event, state=EventState.DELIVERED, error=None, date_delivered=now), record)
        return Outcome("event", "delivered", result.duration_ms)
    if is_gone(result.status_code):
        store.configs.invalidate(config)
    if delay is None:
        store.events.save(replace(event, state=EventState.FAILED, error=result.error, date_delivered=now), record)
        return Outcome("event", "failed", result.duration_ms)
    due = math.ceil((now + delay).timestamp())
    if store.events.save(replace(event, error=result.error, next_attempt_at=due), record):
        _queue_attempt(deliverer, event, attempt + 1, due, math.ceil(delay.total_seconds()))
    return Outcome("event", "retrying", result.duration_ms)


def _retry_delay(deliverer: Deliverer, attempt: int, result: DeliveryResult, now: dt.datetime) -> dt.timedelta | None:
    """How long until the next attempt after failed attempt `attempt`, or None for none."""
    delay = delay_for_answer(
        attempt, result.status_code, parse_retry_after(result.retry_after, now), deliverer.jitter()
    )
    if delay is not None and deliverer.retry_scale != 1.0:
        delay *= deliverer.retry_scale
    return delay


def _give_back(store: Repositories, event: Event) -> None:
    """Release a claim whose job is failing (a no-op when the attempt was recorded already:
    the release's condition no longer holds)."""
    try:
        released = store.events.release_attempt(event)
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
        return sender.post(url, body, deliverer.signed(config, event.id, body))
    except Exception:
        logger.exception("event attempt failed on our side", extra={"event_id": event.id, "config_id": config.id})
        return DeliveryResult(
            error=INTERNAL_ERROR,
            status_code=None,
            duration_ms=int((time.monotonic() - started) * 1000),
            response_excerpt="",
        )


def _route(store: Repositories, event: Event, routing: Routing | None) -> WebhookConfig | None:
    """The config an event goes to now, from its key and organisation (read already, or
    read here in one request)."""
    if routing is None:
        _, key, organisation = store.routing.read(event.organisation, event.key)
    else:
        key, organisation = routing
    target = route(
        key.webhook_config if key else None,
        organisation.webhook_config_default if organisation else None,
    )
    return store.routing.config(event.organisation, target) if target else None


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
