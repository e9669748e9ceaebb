"""Publishing events: the one function other parts of the platform call (docs/design.md §7.8).

    from webhook_service.events import publish
    event = publish(organisation_id, "session", "completed", session_resource, key=key_id)
    event = publish(organisation_id, "session", "completed", session_resource, idempotency_key="session-42")

The event is stored `pending` and its first delivery queued; where it goes is decided
when it is delivered (the key's own config, else the organisation's default). With an
idempotency key, a publish that repeats one made within 24 hours returns that event and
delivers nothing more.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from webhook_service import wiring
from webhook_service.domain.events import Event
from webhook_service.ports import JobSender, Repositories
from webhook_service.service.publishing import MAX_DATA_BYTES, publish_event
from webhook_service.timefmt import utcnow

__all__ = ["MAX_DATA_BYTES", "publish"]


def publish(
    organisation: str,
    type_: str,
    action: str,
    data: dict[str, Any],
    *,
    key: str | None = None,
    store: Repositories | None = None,
    queue: JobSender | None = None,
    idempotency_key: str | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
) -> Event:
    """Store an event and queue its delivery; returns the stored event (see
    `service.publishing.publish_event` for what is checked and raised, and what
    `idempotency_key` does). `store` and `queue` default to the process's own
    (`wiring.services`); `clock` is for tests."""
    if store is None or queue is None:
        services = wiring.services()
        store = store or services.store
        queue = queue or services.queue
    return publish_event(store, queue, organisation, type_, action, data, key, idempotency_key, clock)
