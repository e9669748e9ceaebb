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
from webhook_service.domain import MAX_ATTEMPTS, event_failed_to_queue, failed_to_queue
from webhook_service.errors import DependencyError
from webhook_service.jobqueue import JobSender, config_test_job, event_job
from webhook_service.logs import logger
from webhook_service.storage import Item, Store, event_from_item, task_from_item

REQUEUES = 1  # how many times the sweep queues a job again before it ends the task or event
BATCH = 100  # at most this many items per ByOpen partition per run; the next run takes the rest


def sweep(
    store: Store, queue: JobSender, now: dt.datetime, after: dt.timedelta, test_queue: JobSender | None = None
) -> Counter[tuple[str, str]]:
    """Sweep once; returns how many tasks and events were (kind, `requeued` or `failed`).
    Events are queued again on `queue` (the events lane), tasks on `test_queue` (the tests
    lane; `queue` when None)."""
    done: Counter[tuple[str, str]] = Counter()
    for item in store.overdue(now - after, BATCH):
        kind = item["resource"]
        if kind not in ("task", "event"):
            continue
        lane = test_queue if kind == "task" and test_queue is not None else queue
        action = _requeue(store, lane, item, now) if _may_requeue(item) else _end(store, item, now)
        if action:
            done[(kind, action)] += 1
            logger.info(
                "overdue %s %s",
                kind,
                action,
                extra={"organisation": item["organisation"], f"{kind}_id": item["id"], "due": item["DueSK"]},
            )
    return done


def open_job(item: Item) -> dict[str, Any] | None:
    """The job that carries a task or event that has not ended on: a task's test, or an
    event's next attempt, not before it is due. None for an event whose last attempt was
    claimed and never finished: it has no attempt left to queue. The sweep sends it, and so
    does the local stack for everything open when it starts again (its queue is not kept)."""
    if item["resource"] == "task":
        return config_test_job(item["id"], item["organisation"], item["target"])
    attempts = int(item.get("attempts", 0))
    if attempts >= MAX_ATTEMPTS:
        return None
    due = item.get("next_attempt_at")
    not_before = None if due is None else int(due)
    return event_job(
        item["id"],
        item["organisation"],
        attempts + 1,
        not_before=not_before,
        key=item.get("key"),
        round_=int(item.get("resends", 0)),
    )


def _may_requeue(item: Item) -> bool:
    return int(item.get("sweeps", 0)) < REQUEUES and open_job(item) is not None


def _requeue(store: Store, queue: JobSender, item: Item, now: dt.datetime) -> str | None:
    job = open_job(item)
    if job is None or not store.mark_swept(item, now):
        return None  # it moved on since it was read
    try:
        queue.send(job)
    except DependencyError:
        # Marked swept and due again from now: the next sweep after SWEEP_AFTER ends it.
        telemetry.count(telemetry.QUEUE_SEND_FAILURES)
        logger.warning("overdue job could not be queued again", extra={"organisation": item["organisation"]})
        return None
    return "requeued"


def _end(store: Store, item: Item, now: dt.datetime) -> str | None:
    if item["resource"] == "task":
        task = task_from_item(item)
        ended = store.end_task(failed_to_queue(task, now))
    else:
        event = event_from_item(item)
        ended = store.save_event(event_failed_to_queue(event, now))
        if ended:
            telemetry.count(telemetry.EVENTS_FAILED)
    return "failed" if ended else None
