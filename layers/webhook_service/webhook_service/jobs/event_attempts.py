"""One attempt of an event's delivery: claimed before anything is sent, recorded with its
outcome in one write, and the next attempt's job sent before that write (docs/design.md
§7.9-§7.11, §13).

Every job of an event is sent before the write it continues (publishing, a retry, a resend,
a move to the slow lane), so an event that is pending always has a job on its way, and no
index of open events is needed for it. A job can therefore arrive before that write: it
finds the event behind it (missing, in an earlier round or attempt, or the previous attempt
still claimed) and waits a little (`waited`, at most MAX_WAITS times, a few seconds each);
a job whose write never came gives up after that, and the job that made no progress is
still on the queue (SQS delivers it again). A job that finds the event ahead of it (ended,
a later round or attempt, this attempt made) is a duplicate and does nothing.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from webhook_service.domain.configs import ConfigState, WebhookConfig
from webhook_service.domain.delivery import INTERNAL_ERROR, DeliveryResult, delivery_url
from webhook_service.domain.events import UNCONFIGURED, Event, EventState, route
from webhook_service.domain.pacing import Slot
from webhook_service.domain.retries import MAX_ATTEMPTS
from webhook_service.domain.tenants import Key, Organisation
from webhook_service.httpcodes import delay_for_answer, is_gone, parse_retry_after
from webhook_service.jobs.deliverer import Deliverer, Outcome, attempt_record, event_body
from webhook_service.jobs.pacing import ComeBack, keep_slot, reserve_slot
from webhook_service.lanes import EventJob, Lane, event_job
from webhook_service.logs import logger
from webhook_service.ports import DeliveryClient, Repositories

EARLY_TOLERANCE_SECONDS = 1  # SQS delays are whole seconds: a job this early is on time
CLAIM_SECONDS = 60  # an attempt's claim when the job does not know its invocation's time left
MAX_WAITS = 6  # waits of a job that arrived before the write it continues: 1, 2, 4, 8, 16, 30 s
LONGEST_WAIT_SECONDS = 30

Routing = tuple[Key | None, Organisation | None]


class Turn(enum.Enum):
    """Where an event stands against a job for one of its attempts."""

    CLAIM = "claim"  # the job's attempt is the event's next: claim it
    AHEAD = "ahead"  # the event is past the job: a duplicate or a stale job
    BEHIND = "behind"  # the write the job continues has not landed (or a claim still holds)


def turn(event: Event | None, attempt: int, round_: int, now: float) -> Turn:
    """Whether a job for attempt `attempt` of round `round_` may claim it now."""
    if event is None or event.resends < round_:
        return Turn.BEHIND  # not written yet (publishing, a resend)
    if event.resends > round_ or event.ended or event.attempts > attempt:
        return Turn.AHEAD
    if event.attempts == attempt:
        if event.claimed_until is None:
            return Turn.AHEAD  # made and recorded
        # Claimed: by a job still making it (or giving it back), or one lost whose lease ran out
        # (compared as the claim's own condition compares it, in whole seconds).
        return Turn.CLAIM if event.claimed_until < math.floor(now) else Turn.BEHIND
    if event.attempts == attempt - 1 and event.claimed_until is None:
        return Turn.CLAIM
    return Turn.BEHIND  # an earlier attempt is still being made, or its outcome written


def run_event(
    deliverer: Deliverer, job: EventJob, lane: Lane = Lane.EVENTS, time_left: Callable[[], float] | None = None
) -> Outcome:
    """Make attempt `job.attempt` of an event's delivery, in round `job.round` (how many
    resends came before the job was sent). Returns the outcome, for logs and metrics:
    `delivered`, `retrying`, `failed`, `unconfigured`, `waiting` (a hop of a long delay, or a
    wait for the write the job continues), `paced` (sent back to wait for its config's
    slot: it has a `rate_limit`), `duplicate`, `missing` (its write never came), or
    `slow-lane` (moved to the slow lane, no attempt used). When the job names the event's key,
    the event, its key and its organisation are read in one request."""
    now = deliverer.clock()
    if job.not_before is not None and now.timestamp() < job.not_before - EARLY_TOLERANCE_SECONDS:
        deliverer.queue.send(job.message(), delay_seconds=math.ceil(job.not_before - now.timestamp()))
        return Outcome("event", "waiting")
    event, routing = _read(deliverer.store, job)
    where = turn(event, job.attempt, job.round, now.timestamp())
    if where is Turn.BEHIND:
        return _wait(deliverer, job, lane)
    if where is Turn.AHEAD or event is None:
        return Outcome("event", "duplicate")
    config = _route(deliverer.store, event, routing)
    if config is not None and config.state == ConfigState.VALID and deliverer.moves_to_slow_lane(lane, config):
        deliverer.lanes.queue(Lane.SLOW).send(_job(event, job.attempt))
        return Outcome("event", "slow-lane")
    slot = None
    if config is not None and config.state == ConfigState.VALID:
        go, slot = reserve_slot(deliverer, config, job.event, job.slot, _come_back(deliverer, job, lane))
        if not go:
            return Outcome("event", "paced")
    # The claim holds no longer than this invocation can run: a job lost with it is taken
    # over by the next copy of the job once the claim has run out.
    now = deliverer.clock()
    lease = time_left() if time_left is not None else CLAIM_SECONDS
    claimed = deliverer.store.events.claim_attempt(
        event,
        job.attempt,
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
        return _use_claim(deliverer, claimed, config, job.attempt, lane, slot)
    except BaseException:
        _give_back(deliverer.store, claimed)
        raise


def _come_back(deliverer: Deliverer, job: EventJob, lane: Lane) -> ComeBack:
    """How the job goes back on its queue to wait for its config's pacing slot."""

    def come_back(slot: Slot, delay: int) -> None:
        deliverer.lanes.queue(lane).send(replace(job, slot=slot).message(), delay_seconds=delay)

    return come_back


def _wait(deliverer: Deliverer, job: EventJob, lane: Lane) -> Outcome:
    """The job arrived before the write it continues: send it again a little later, or,
    after MAX_WAITS, give up (the write never came; whoever is behind still holds a job)."""
    if job.waited >= MAX_WAITS:
        logger.warning("event job gave up waiting", extra={"event_id": job.event, "attempt": job.attempt})
        return Outcome("event", "missing")
    delay = min(2**job.waited, LONGEST_WAIT_SECONDS)
    deliverer.lanes.queue(lane).send(replace(job, waited=job.waited + 1).message(), delay_seconds=delay)
    return Outcome("event", "waiting")


def _read(store: Repositories, job: EventJob) -> tuple[Event | None, Routing | None]:
    """The event, and its routing when the job named the event's key (read in the same
    request); None for the routing when it must be read apart."""
    if not job.key_named:
        return store.events.get(job.organisation, job.event), None
    event, key, organisation_found = store.routing.read(job.organisation, job.key, job.event)
    if event is not None and event.key == job.key:
        return event, (key, organisation_found)
    return event, None


def _use_claim(
    deliverer: Deliverer, event: Event, config: WebhookConfig | None, attempt: int, lane: Lane, slot: Slot | None
) -> Outcome:
    """Make the claimed attempt `attempt` of `event` at its pacing slot, and record it."""
    store = deliverer.store
    if config is None or config.state != ConfigState.VALID:
        store.events.save(replace(event, state=EventState.FAILED, error=UNCONFIGURED, date_delivered=deliverer.clock()))
        logger.warning("event unconfigured", extra={"event_id": event.id, "config_id": event.webhook_config})
        return Outcome("event", UNCONFIGURED)
    later = keep_slot(deliverer, config, event.id, slot)
    if later is not None:  # the slot was missed and the next is far: come back for it, unclaimed
        _come_back(deliverer, EventJob.of(_job(event, attempt)), lane)(*later)
        store.events.release_attempt(event)
        return Outcome("event", "paced")
    url = delivery_url(config.url, event.id)
    result = _attempt(deliverer, deliverer.sender_for(lane), event, config, url)
    if deliverer.was_cut(lane, result):
        deliverer.mark_slow(config)
        deliverer.lanes.queue(Lane.SLOW).send(_job(event, attempt))  # first: the release makes it due
        if not store.events.release_attempt(event, deliverer.cut_attempt(event, config, url, result)):
            return Outcome("event", "duplicate", result.duration_ms)  # taken over meanwhile
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
    # The next attempt's job first: once the outcome is written, the event waits on it.
    _queue_attempt(deliverer, event, attempt + 1, due, math.ceil(delay.total_seconds()))
    store.events.save(replace(event, error=result.error, next_attempt_at=due), record)
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
