"""One step of a config's recover task: the next events of its window resent, the task's
cursor and counts saved, and the next step queued (docs/design.md §19.2).

A step takes at most `step_size(rate_limit)` events, oldest first from the cursor the task
holds, and stops early after STEP_BUDGET_SECONDS or when the invocation runs short. Each
event is resent as `POST /events/{id}/resend` does it (its new round's job sent first, then
the conditional write that re-opens it), so an event re-opened by anyone else meanwhile is
not re-opened again. The step saves its cursor only after its resends: a step that dies
midway is run again from the saved cursor (its job comes back), and what it had resent is
no longer `failed`, or loses its conditional write, so nothing is delivered twice."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from webhook_service import telemetry
from webhook_service.domain.configs import ConfigState, Task, WebhookConfig, superseded
from webhook_service.domain.events import Event, resent, route
from webhook_service.domain.limits import AT_ONCE
from webhook_service.domain.recovery import (
    STEP_BUDGET_SECONDS,
    Progress,
    next_step_delay,
    progress_of,
    recovered,
    step_size,
)
from webhook_service.errors import DependencyError
from webhook_service.jobs.deliverer import STORAGE_RESERVE_SECONDS, Deliverer, Outcome
from webhook_service.lanes import Lane, event_job, recover_job
from webhook_service.logs import logger

TimeLeft = Callable[[], float]


def run_recover(
    deliverer: Deliverer,
    organisation: str,
    task_id: str,
    time_left: TimeLeft | None = None,
    lane: Lane = Lane.TESTS,
) -> Outcome:
    """Run one step of a recover task; the next step goes on the same lane (the slow one for
    an organisation with more open tasks than the tests lane takes of one). Returns the
    outcome, for logs and metrics: `stepped` (more to come: the next step is queued),
    `succeeded` (the window is done), `superseded` (the config is no longer `valid`: the task
    ends there), `duplicate` (the task had ended, or another copy of this step saved first)
    or `missing`."""
    store, began = deliverer.store, time.monotonic()
    task = store.configs.get_task(organisation, task_id)
    if task is None:
        logger.warning("recover task not found", extra={"task_id": task_id})
        return Outcome("recover", "missing")
    if task.ended:
        return Outcome("recover", "duplicate")
    config = store.configs.get(organisation, task.target)
    if config is None or config.state != ConfigState.VALID:
        ended = store.configs.end_task(superseded(task, deliverer.clock()))
        logger.info("recover superseded", extra={"task_id": task.id, "config_id": task.target})
        return Outcome("recover", "superseded" if ended else "duplicate")
    progress, cursor, more = _resend_next(deliverer, task, config, time_left)
    now = deliverer.clock()
    if not more:
        if not store.recoveries.finish(task, recovered(task, progress, now)):
            return Outcome("recover", "duplicate")
        logger.info("recover done", extra={"task_id": task.id, "config_id": config.id, **progress.result()})
        return Outcome("recover", "succeeded")
    if not store.recoveries.advance(task, cursor, progress, now):
        return Outcome("recover", "duplicate")  # another copy of this step saved first: its chain goes on
    delay = next_step_delay(progress.resent - progress_of(task).resent, config.rate_limit, time.monotonic() - began)
    deliverer.lanes.queue(lane).send(recover_job(task.id, organisation, config.id), delay)
    return Outcome("recover", "stepped")


def _resend_next(
    deliverer: Deliverer, task: Task, config: WebhookConfig, time_left: TimeLeft | None
) -> tuple[Progress, str | None, bool]:
    """Resend the next events of the window: the progress, the cursor after the last event
    dealt with, and whether any of the window is left."""
    progress, cursor = progress_of(task), task.cursor
    limit = step_size(config.rate_limit)
    page = deliverer.store.recoveries.failed_page(
        task.organisation, config.id, progress.since, progress.until, cursor, limit
    )
    began = time.monotonic()
    for sort_key, event in page:
        if _out_of_time(began, time_left):
            return progress, cursor, True
        if event is not None and not event.is_test:
            try:
                progress = progress.counted(_resend(deliverer, event, config))
            except DependencyError:
                # The queue or the table refused: what was done is saved, the rest is the next step's.
                logger.warning("recover step stopped by a dependency", extra={"task_id": task.id, "event_id": event.id})
                return progress, cursor, True
        cursor = sort_key
    return progress, cursor, len(page) == limit


def _out_of_time(began: float, time_left: TimeLeft | None) -> bool:
    """Whether the step stops here: its own budget spent, or too little left of the
    invocation for one more resend and the step's own writes."""
    if time.monotonic() - began >= STEP_BUDGET_SECONDS:
        return True
    return time_left is not None and time_left() < 2 * STORAGE_RESERVE_SECONDS


def _resend(deliverer: Deliverer, event: Event, config: WebhookConfig) -> bool:
    """Resend one event as a resend request does, if its route still leads to `config`;
    whether this step re-opened it."""
    _, key, organisation = deliverer.store.routing.read(event.organisation, event.key)
    target = route(key.webhook_config if key else None, organisation.webhook_config_default if organisation else None)
    if target != config.id:
        return False  # it would go to another receiver now, or to none
    now = deliverer.clock()
    reopened = resent(event, now)
    # Its new round's job first: if the write below loses, the job is a copy of the winner's
    # (the same round) and finds its attempt made.
    deliverer.lanes.send(event_job(event.id, event.organisation, 1, key=event.key, round_=reopened.resends))
    if not deliverer.store.events.resend(event, reopened, _resent_before(now)):
        return False
    telemetry.count(telemetry.RESENDS)
    return True


def _resent_before(now: dt.datetime) -> dt.datetime:
    """An event resent less than a second ago is not re-opened again (design.md §13)."""
    return now - AT_ONCE
