"""Recover a config's receiver after an outage: one request makes a task that resends every
`failed` event of a window whose last attempt went to the config (docs/design.md §19.2)."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

from webhook_service.domain.configs import ConfigState
from webhook_service.domain.recovery import CLOCK_ALLOWANCE, RECOVER_DAYS_BACK, new_recover_task
from webhook_service.domain.tenants import Principal
from webhook_service.errors import InvalidParameterError, InvalidStateError
from webhook_service.lanes import recover_job
from webhook_service.logs import logger
from webhook_service.service import limits
from webhook_service.service.configs import load_config, queue_task, store_counted
from webhook_service.service.context import Services
from webhook_service.timefmt import parse_datetime
from webhook_service.validation import check_fields
from webhook_service.views import task_resource


def recover_config(svc: Services, caller: Principal, config_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Store a `webhook_config.recover` task, then queue its first step. If SQS refuses the
    job, the task ends `failed`/`queue-unavailable` and the answer is 503. Its steps run on
    the tests lane, so it is held as a test is: one of the organisation's tests a second, one
    of its open tests until it ends (429 past either), and in the slow lane when the
    organisation has more open than the tests lane takes of one. Not counted in the
    organisation's resends: it is one request, paced by the config's `rate_limit`."""
    check_fields(body, allowed=("since", "until"), required=("since",))
    now = svc.clock()
    since, until = validate_recover_window(body, now)
    config = load_config(svc, caller, config_id)
    if config.state != ConfigState.VALID:
        raise InvalidStateError(
            "Only a valid config can be recovered: its events would fail again at once. Test it (or set its"
            " state to new) first.",
            params={"state": str(config.state)},
        )
    task = new_recover_task(config, caller.key_id, since, until, now)
    limits.take_test(svc, caller)  # a task on the tests lane: one of the organisation's tests a second
    lane = store_counted(svc, partial(svc.store.recoveries.create, task))
    job = recover_job(task.id, task.organisation, config.id)
    queue_task(svc, task, lane, job, "The recovery could not be queued; nothing was resent. Try again.")
    logger.info("recover queued", extra={"task_id": task.id, "config_id": config.id, "since": body["since"]})
    return task_resource(task)


def validate_recover_window(body: dict[str, Any], now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """A recover request's window `[since, until)`: `since` at most RECOVER_DAYS_BACK days
    before `now`, `until` (absent or null: now) not ahead of `now` by more than the clock
    allowance (taken as now when ahead at all), and `since` before `until`."""
    since = _window_bound(body.get("since"), "since")
    until = now if body.get("until") is None else _window_bound(body["until"], "until")
    if since < now - dt.timedelta(days=RECOVER_DAYS_BACK):
        raise InvalidParameterError(
            f"since must be at most {RECOVER_DAYS_BACK} days ago.",
            params={"since": f"must be at most {RECOVER_DAYS_BACK} days ago"},
        )
    if until > now + CLOCK_ALLOWANCE:
        raise InvalidParameterError("until must not be in the future.", params={"until": "must not be in the future"})
    until = min(until, now)
    if since >= until:
        raise InvalidParameterError("since must be before until.", params={"since": "must be before until"})
    return since, until


def _window_bound(value: Any, name: str) -> dt.datetime:
    try:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return parse_datetime(value)
    except ValueError:
        raise InvalidParameterError(
            f"{name} is not an ISO 8601 datetime or date.", params={name: "must be an ISO 8601 datetime or date"}
        ) from None
