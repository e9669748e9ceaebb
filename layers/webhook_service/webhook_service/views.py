"""Resources: the JSON the API answers and deliveries carry, rendered from domain values.

One function per resource (webhook_config, task, event, attempt, key, organisation) and the
list object. What is stored as a member of a state enum is shown as its plain string."""

from __future__ import annotations

import datetime as dt
from typing import Any

from webhook_service.domain.configs import Task, WebhookConfig
from webhook_service.domain.events import Attempt, Event
from webhook_service.domain.queries import Page
from webhook_service.domain.tenants import Key, Organisation
from webhook_service.timefmt import format_datetime, utcnow


def _optional_datetime(value: dt.datetime | None) -> str | None:
    return format_datetime(value) if value else None


def config_resource(
    config: WebhookConfig, *, with_secret: bool = True, now: dt.datetime | None = None
) -> dict[str, Any]:
    """A webhook config. `previous_secret_expires` is shown while the previous secret still
    signs (null once it has stopped, or when there is none); like the secret, it is left
    out of the view without secrets that a test event carries, whose bytes must not
    depend on when they are made."""
    resource: dict[str, Any] = {
        "id": config.id,
        "resource": "webhook_config",
        "organisation": config.organisation,
        "url": config.url,
        "state": str(config.state),
        "date_created": format_datetime(config.date_created),
    }
    if with_secret:
        resource["secret"] = config.secret
        expires = config.previous_secret_expires
        signing = expires is not None and config.previous_secret_at(now or utcnow()) is not None
        resource["previous_secret_expires"] = format_datetime(expires) if signing and expires else None
        # Changed without a new version: left out of the test event with the secret, so that
        # a test's job sends the same bytes however often it runs.
        resource["rate_limit"] = config.rate_limit
    return resource


def task_resource(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "resource": "task",
        "organisation": task.organisation,
        "key": task.key,
        "type": task.type,
        "target": task.target,
        "state": str(task.state),
        "error": task.error,
        "result": task.result,
        "date_created": format_datetime(task.date_created),
        "date_started": _optional_datetime(task.date_started),
        "date_completed": _optional_datetime(task.date_completed),
    }


def event_resource(event: Event) -> dict[str, Any]:
    """An event, as the API shows it and as its deliveries carry it."""
    return {
        "id": event.id,
        "resource": "event",
        "organisation": event.organisation,
        "type": event.type,
        "action": event.action,
        "data": event.data,
        "state": str(event.state),
        "retries": event.retries,
        "webhook_config": event.webhook_config,
        "error": event.error,
        "date_created": format_datetime(event.date_created),
        "date_delivered": _optional_datetime(event.date_delivered),
    }


def attempt_resource(attempt: Attempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "resource": "attempt",
        "organisation": attempt.organisation,
        "event": attempt.event,
        "webhook_config": attempt.webhook_config,
        "url": attempt.url,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
        "response_excerpt": attempt.response_excerpt,
        "date_created": format_datetime(attempt.date_created),
    }


def key_resource(key: Key) -> dict[str, Any]:
    """A key, as the API and the operator's commands show it: never the token or its hash."""
    return {
        "id": key.id,
        "resource": "key",
        "organisation": key.organisation,
        "webhook_config": key.webhook_config,
        "state": str(key.state),
        "date_created": format_datetime(key.date_created),
    }


def organisation_resource(organisation: Organisation) -> dict[str, Any]:
    """An organisation's own fields (the API adds its configs and state)."""
    return {
        "id": organisation.id,
        "resource": "organisation",
        "name": organisation.name,
        "webhook_config_default": organisation.webhook_config_default,
        "date_created": format_datetime(organisation.date_created),
    }


def list_resource(page: Page[Any], url: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    """The list object. Beyond ricloud's fields: `total_count_capped: true` when
    `total_count` is a lower bound, and `next_after_id` (the next page's `after_id`)
    whenever `has_more` (README, "Lists")."""
    body: dict[str, Any] = {
        "resource": "list",
        "data": data,
        "has_more": page.has_more,
        "total_count": page.total_count,
        "url": url,
    }
    if page.total_count_capped:
        body["total_count_capped"] = True
    if page.next_after_id is not None:
        body["next_after_id"] = page.next_after_id
    return body
