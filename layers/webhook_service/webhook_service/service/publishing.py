"""Publishing an event: validated, stored `pending`, its first delivery queued; where it
goes is decided when it is delivered (the key's own config, else the organisation's
default). The platform calls it through `webhook_service.events.publish`."""

from __future__ import annotations

from typing import Any

from webhook_service import jsontext, telemetry
from webhook_service.domain.events import Event, is_event_name, new_event
from webhook_service.domain.ids import is_uuid
from webhook_service.domain.redaction import redact
from webhook_service.errors import DependencyError, InvalidParameterError, NotFoundError
from webhook_service.lanes import event_job
from webhook_service.logs import logger
from webhook_service.ports import JobSender, Repositories
from webhook_service.timefmt import utcnow
from webhook_service.validation import check_event_data

MAX_DATA_BYTES = 64 * 1024


def publish_event(
    store: Repositories,
    queue: JobSender,
    organisation: str,
    type_: str,
    action: str,
    data: dict[str, Any],
    key: str | None = None,
) -> Event:
    """Store an event and queue its delivery; returns the stored event.

    `type_` is the related resource's type and `data` that resource: a JSON object of at
    most 64 KiB that DynamoDB could hold as a map (validation.check_event_data), whose
    secret-like fields are dropped at any depth (domain.redaction.is_secret_field). Its numbers are
    delivered with the text they were given in (webhook_service.jsontext). `key`, when
    given, is the key whose own config takes precedence over the organisation's default.

    The first attempt's job is sent before the event is stored (jobs.event_attempts): a job
    that arrives first waits for it, and an event is never stored without a job on its way.

    Raises InvalidParameterError for bad input, NotFoundError for an unknown organisation
    or key, and DependencyError if the job could not be queued (nothing is stored) or the
    event could not be stored (its job finds nothing and gives up).
    """
    data = _checked(type_, action, key, data)
    _check_routing(store, organisation, key)
    event = new_event(organisation, type_, action, data, key, utcnow())
    try:
        queue.send(event_job(event.id, event.organisation, attempt=1, key=event.key))
    except DependencyError:
        telemetry.emit_now(telemetry.QUEUE_SEND_FAILURES)
        raise
    store.events.create(event)
    telemetry.emit_now(telemetry.EVENTS_PUBLISHED)
    logger.info("event published", extra={"event_id": event.id, "type": type_, "action": action})
    return event


def _checked(type_: str, action: str, key: str | None, data: dict[str, Any]) -> dict[str, Any]:
    """The data as it is stored; raises InvalidParameterError naming every bad argument."""
    problems = {}
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
