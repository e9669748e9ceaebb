"""Publishing an event: validated, stored `pending`, its first delivery queued; where it
goes is decided when it is delivered (the key's own config, else the organisation's
default); once per idempotency key, when the publisher names one. The platform calls it
through `webhook_service.events.publish`."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from webhook_service import jsontext, telemetry
from webhook_service.domain.events import Event, is_event_name, new_event
from webhook_service.domain.idempotency import (
    KEY_REUSED,
    KEY_RULE,
    IdempotencyClaim,
    claim_for,
    claimed_event,
    in_key_order,
    is_idempotency_key,
    request_fingerprint,
)
from webhook_service.domain.ids import is_uuid
from webhook_service.domain.redaction import redact
from webhook_service.errors import DependencyError, IdempotencyKeyReusedError, InvalidParameterError, NotFoundError
from webhook_service.lanes import event_job
from webhook_service.logs import logger
from webhook_service.ports import JobSender, Repositories
from webhook_service.timefmt import utcnow
from webhook_service.validation import check_event_data

MAX_DATA_BYTES = 64 * 1024
# How long a publish that finds its idempotency key claimed, and the claim's event not yet
# stored, waits for the first publisher to store it (counted from the claim's creation)
# before it stores the event itself, under the claim's id.
FIRST_PUBLISH_WAIT_SECONDS = 2.0
FIRST_PUBLISH_POLL_SECONDS = 0.05  # the pause after the first look; each next one doubles,
FIRST_PUBLISH_POLL_MAX_SECONDS = 0.5  # to at most this: about 8 reads in the 2 s

Clock = Callable[[], dt.datetime]


def publish_event(
    store: Repositories,
    queue: JobSender,
    organisation: str,
    type_: str,
    action: str,
    data: dict[str, Any],
    key: str | None = None,
    idempotency_key: str | None = None,
    clock: Clock = utcnow,
) -> Event:
    """Store an event and queue its delivery; returns the stored event.

    `type_` is the related resource's type and `data` that resource: a JSON object of at
    most 64 KiB that DynamoDB could hold as a map (validation.check_event_data), whose
    secret-like fields are dropped at any depth (domain.redaction.is_secret_field). Its numbers are
    delivered with the text they were given in (webhook_service.jsontext). `key`, when
    given, is the key whose own config takes precedence over the organisation's default.

    The first attempt's job is sent before the event is stored (jobs.event_attempts): a job
    that arrives first waits for it, and an event is never stored without a job on its way.

    `idempotency_key`, when given, makes the publish happen once per key and organisation
    within 24 hours (domain.idempotency): a publish whose key is claimed returns the event
    the claim names, and nothing more is delivered (docs/design.md §7.8).

    Raises InvalidParameterError for bad input, IdempotencyKeyReusedError for a key claimed
    by another request, NotFoundError for an unknown organisation or key, and
    DependencyError if the job could not be queued (nothing is stored) or the event could
    not be stored (its job finds nothing and gives up; with an idempotency key, the next
    publish with it stores the event).
    """
    data = _checked(type_, action, key, data, idempotency_key)
    _check_routing(store, organisation, key)
    event = new_event(organisation, type_, action, data, key, clock())
    if idempotency_key is None:
        return _queue_and_store(store, queue, event)
    request = request_fingerprint(type_, action, key, jsontext.dumps(in_key_order(event.data)))
    held = store.idempotency.claim(organisation, idempotency_key, claim_for(event, request), event.date_created)
    if held is None:
        return _queue_and_store(store, queue, event)
    if held.request != request:
        raise IdempotencyKeyReusedError(
            "The idempotency key was used for another request.", params={"idempotency_key": KEY_REUSED}
        )
    return _claimed(store, queue, held, event, clock)


def _queue_and_store(store: Repositories, queue: JobSender, event: Event) -> Event:
    """Queue the event's first attempt, then store it; the event as stored (another's, when
    a publisher of the same idempotency key stored it first)."""
    try:
        queue.send(event_job(event.id, event.organisation, attempt=1, key=event.key))
    except DependencyError:
        telemetry.emit_now(telemetry.QUEUE_SEND_FAILURES)
        raise
    stored = store.events.create(event)
    if stored is event:
        telemetry.emit_now(telemetry.EVENTS_PUBLISHED)
        logger.info("event published", extra={"event_id": event.id, "type": event.type, "action": event.action})
    return stored


def _claimed(store: Repositories, queue: JobSender, held: IdempotencyClaim, request: Event, clock: Clock) -> Event:
    """The event an idempotency key's claim names: as stored, once its first publisher has
    stored it; else (that publisher stopped, or is slower than FIRST_PUBLISH_WAIT_SECONDS)
    stored here under the claim's id and creation time. Storing is conditional on the id, so
    one event is ever stored; each publisher that stores it queues a job, and the deliverer's
    claim on attempt 1 makes one delivery of them all."""
    stored = _await_first_publisher(store, held, request.organisation, clock)
    if stored is not None:
        return stored
    logger.warning("idempotency key's event stored by a later publish", extra={"event_id": held.event_id})
    return _queue_and_store(store, queue, claimed_event(held, request))


def _await_first_publisher(
    store: Repositories, held: IdempotencyClaim, organisation: str, clock: Clock
) -> Event | None:
    """The claim's event, read until it is stored or FIRST_PUBLISH_WAIT_SECONDS have passed
    since the claim was made (one read for a claim older than that); None if it is not."""
    waited = held.age(clock()).total_seconds()
    deadline = time.monotonic() + min(max(FIRST_PUBLISH_WAIT_SECONDS - waited, 0.0), FIRST_PUBLISH_WAIT_SECONDS)
    pause = FIRST_PUBLISH_POLL_SECONDS
    while True:
        stored = store.events.get(organisation, held.event_id)
        left = deadline - time.monotonic()
        if stored is not None or left <= 0:
            return stored
        time.sleep(min(pause, left))
        pause = min(pause * 2, FIRST_PUBLISH_POLL_MAX_SECONDS)


def _checked(
    type_: str, action: str, key: str | None, data: dict[str, Any], idempotency_key: str | None
) -> dict[str, Any]:
    """The data as it is stored; raises InvalidParameterError naming every bad argument."""
    problems = {}
    if idempotency_key is not None and not is_idempotency_key(idempotency_key):
        problems["idempotency_key"] = KEY_RULE
    if not is_event_name(type_):
        problems["type"] = "must be a lowercase name such as webhook_config"
    if not is_event_name(action):
        problems["action"] = "must be a lowercase name such as created"
    if key is not None and not is_uuid(key):
        problems["key"] = "must be a key id"
    try:
        data = redact(check_event_data(data, MAX_DATA_BYTES))
    except InvalidParameterError as exc:
        problems.update(exc.params or {})
    else:
        if len(jsontext.dumps(data).encode("utf-8")) > MAX_DATA_BYTES:
            problems["data"] = f"must be at most {MAX_DATA_BYTES} bytes as JSON"
    if problems:
        raise InvalidParameterError("The event is not valid.", params=problems)
    return data


def _check_routing(store: Repositories, organisation: str, key: str | None) -> None:
    """Raises NotFoundError unless the organisation, and the key when given, exist."""
    if not is_uuid(organisation):
        raise NotFoundError("organisation")
    _, key_item, organisation_item = store.routing.read(organisation, key)  # both in one request
    if organisation_item is None:
        raise NotFoundError("organisation")
    if key is not None and key_item is None:
        raise NotFoundError("key")
