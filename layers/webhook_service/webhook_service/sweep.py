"""The overdue sweep: no task or event stays `pending` or `processing` for ever.

A task or event waits on a job in the delivery queue. The job can be lost to us: SQS
refused it and marking the task `failed` failed too, or it failed for our own reasons on
every receive and went to the dead-letter queue. The sweep (the `sweep` function, on a
schedule) finds what has been due for longer than `SWEEP_AFTER_MINUTES` (default 60, far
beyond the 15 minutes SQS takes to give a job up) through the sparse `ByOpen` index, and

- the first time, queues its job again (a task's test, an event's next attempt) and makes
  it due again from now: a queue that was down for a while costs nothing;
- the second time, ends it `failed` with error `queue-unavailable`, as docs/design.md §6.4 ends
  a test whose job could not be queued. A config keeps its state (it stays re-testable).

Every write is conditional on what was read, so a job that turns up late and the sweep
never both win: a job for an ended task or a claimed attempt does nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from webhook_service import telemetry
from webhook_service.domain.configs import Task, failed_to_queue
from webhook_service.domain.events import Event, event_failed_to_queue
from webhook_service.domain.queries import Overdue
from webhook_service.domain.retries import MAX_ATTEMPTS
from webhook_service.errors import DependencyError
from webhook_service.lanes import config_test_job, event_job
from webhook_service.logs import logger
from webhook_service.ports import JobSender, Repositories

REQUEUES = 1  # how many times the sweep queues a job again before it ends the task or event
BATCH = 100  # at most this many items per ByOpen partition per run; the next run takes the rest


def sweep(
    store: Repositories, queue: JobSender, now: dt.datetime, after: dt.timedelta, test_queue: JobSender | None = None
) -> Counter[tuple[str, str]]:
    """Sweep once; returns how many tasks and events were (kind, `requeued` or `failed`).
    Events are queued again on `queue` (the events lane), tasks on `test_queue` (the tests
    lane; `queue` when None)."""
    done: Counter[tuple[str, str]] = Counter()
    for overdue in store.overdue.find(now - after, BATCH):
        kind, work = overdue.kind, overdue.work
        lane = test_queue if kind == "task" and test_queue is not None else queue
        action = _requeue(store, lane, overdue, now) if _may_requeue(overdue) else _end(store, work, now)
        if action:
            done[(kind, action)] += 1
            logger.info(
                "overdue %s %s",
                kind,
                action,
                extra={"organisation": work.organisation, f"{kind}_id": work.id, "due": overdue.due},
            )
    return done


def open_job(work: Task | Event) -> dict[str, Any] | None:
    """The job that carries a task or event that has not ended on: a task's test, or an
    event's next attempt, not before it is due. None for an event whose last attempt was
    claimed and never finished: it has no attempt left to queue. The sweep sends it, and so
    does the local stack for everything open when it starts again (its queue is not kept)."""
    if isinstance(work, Task):
        return config_test_job(work.id, work.organisation, work.target)
    if work.attempts >= MAX_ATTEMPTS:
        return None
    return event_job(
        work.id,
        work.organisation,
        work.attempts + 1,
        not_before=work.next_attempt_at,
        key=work.key,
        round_=work.resends,
    )


def _may_requeue(overdue: Overdue) -> bool:
    return overdue.sweeps < REQUEUES and open_job(overdue.work) is not None


def _requeue(store: Repositories, queue: JobSender, overdue: Overdue, now: dt.datetime) -> str | None:
    job = open_job(overdue.work)
    if job is None or not store.overdue.mark_swept(overdue, now):
        return None  # it moved on since it was read
    try:
        queue.send(job)
    except DependencyError:
        # Marked swept and due again from now: the next sweep after SWEEP_AFTER ends it.
        telemetry.count(telemetry.QUEUE_SEND_FAILURES)
        logger.warning("overdue job could not be queued again", extra={"organisation": overdue.work.organisation})
        return None
    return "requeued"


def _end(store: Repositories, work: Task | Event, now: dt.datetime) -> str | None:
    if isinstance(work, Task):
        ended = store.configs.end_task(failed_to_queue(work, now))
    else:
        ended = store.events.save(event_failed_to_queue(work, now))
        if ended:
            telemetry.count(telemetry.EVENTS_FAILED)
    return "failed" if ended else None
