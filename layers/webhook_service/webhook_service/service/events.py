"""Events: read one, list them, list an event's attempts, resend one (docs/design.md §12, §13)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from webhook_service import telemetry
from webhook_service.domain.configs import ConfigState, WebhookConfig
from webhook_service.domain.events import EVENT_STATES, Event, can_resend, resent, route
from webhook_service.domain.ids import is_uuid
from webhook_service.domain.limits import AT_ONCE
from webhook_service.domain.tenants import Principal
from webhook_service.errors import DependencyError, InvalidStateError, NotFoundError, UnavailableError
from webhook_service.logs import logger
from webhook_service.service import limits
from webhook_service.service.context import Services, cursors_of
from webhook_service.validation import ANY_NAME, check_fields, parse_list_query
from webhook_service.views import attempt_resource, event_resource, list_resource


def _load_event(svc: Services, caller: Principal, event_id: str) -> Event:
    event = svc.store.events.get(caller.organisation, event_id) if is_uuid(event_id) else None
    if event is None:
        raise NotFoundError("event")
    return event


def get_event(svc: Services, caller: Principal, event_id: str) -> dict[str, Any]:
    return event_resource(_load_event(svc, caller, event_id))


def list_events(svc: Services, caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    query = parse_list_query(params, {"type": ANY_NAME, "action": ANY_NAME, "state": EVENT_STATES})
    with cursors_of("event"):
        page = svc.store.lists.events(caller.organisation, query)
    return list_resource(page, "/events", [event_resource(e) for e in page.items])


def list_attempts(svc: Services, caller: Principal, event_id: str, params: dict[str, str]) -> dict[str, Any]:
    """An event's attempts, newest first (design.md §12); 404 for an event that is not the
    caller's organisation's."""
    query = parse_list_query(params, {})
    event = _load_event(svc, caller, event_id)
    query = replace(query, filters={"event": event.id})
    with cursors_of("attempt"):
        page = svc.store.lists.attempts(caller.organisation, query)
    return list_resource(page, f"/events/{event.id}/attempts", [attempt_resource(a) for a in page.items])


def resend_event(
    svc: Services, caller: Principal, event_id: str, body: dict[str, Any], arrived: dt.datetime | None = None
) -> dict[str, Any]:
    """Re-open an ended event for a new round of attempts, with the same id (design.md §13).

    The new round's first job is sent first (jobs.event_attempts: it waits for the write if
    it arrives before it); the write is conditional on the event being as it was read
    (ended, same round) and on no other resend having been written since this request
    arrived (`arrived`, or a second before): of resends made at once, one re-opens it and
    the others are refused (400; the job each sent finds its attempt made), so it is
    delivered once, however late they read it."""
    check_fields(body, allowed=())
    arrived = arrived or svc.clock()
    event = _load_event(svc, caller, event_id)
    _check_resendable(event)
    _routed_config(svc, caller, event)
    limits.take_resend(svc, caller)
    reopened = resent(event, svc.clock())
    from webhook_service.lanes import event_job  # the event functions that only read never load the lanes

    try:
        svc.queue.send(event_job(event.id, event.organisation, 1, key=event.key, round_=reopened.resends))
    except DependencyError as exc:
        telemetry.count(telemetry.QUEUE_SEND_FAILURES)
        logger.warning("resend not queued", extra={"event_id": event.id, "reason": str(exc)})
        raise UnavailableError("The resend could not be queued; try again.", params={"event": event.id}) from exc
    if not svc.store.events.resend(event, reopened, arrived - AT_ONCE):
        raise InvalidStateError(
            "The event was resent by another request made at the same time; it is delivered once.",
            params={"event": "resent by another request at once"},
        )
    telemetry.count(telemetry.RESENDS)
    logger.info("event resent", extra={"event_id": event.id, "round": reopened.resends})
    return event_resource(reopened)


def _check_resendable(event: Event) -> None:
    if event.is_test:
        raise InvalidStateError(
            "A config's test event cannot be resent; test the config again instead.",
            params={"type": event.type, "action": event.action},
        )
    if not can_resend(event):
        raise InvalidStateError(
            "Only a delivered or failed event can be resent; this one is still being delivered.",
            params={"state": str(event.state)},
        )


def _routed_config(svc: Services, caller: Principal, event: Event) -> WebhookConfig:
    """The valid config the event would go to now (its key's, else the organisation's
    default), or InvalidStateError."""
    _, key, organisation = svc.store.routing.read(caller.organisation, event.key)
    target = route(
        key.webhook_config if key else None,
        organisation.webhook_config_default if organisation else None,
    )
    config = svc.store.configs.get(caller.organisation, target) if target else None
    if config is None or config.state != ConfigState.VALID:
        raise InvalidStateError(
            "The event has no valid webhook config to go to: set the key's config or the organisation's"
            " default to a valid one first.",
            params={"webhook_config": "no valid config for this event"},
        )
    return config
