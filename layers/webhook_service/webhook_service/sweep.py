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

A run reads up to BATCH items of each ByOpen partition (6,400 at most) and takes them oldest
first, CHUNK at a time: a chunk's writes run WORKERS at once and its jobs go to SQS ten to a
request. Before each chunk it checks the invocation's time left and stops when that is less
than STOP_MARGIN_SECONDS plus twice its slowest chunk so far (one chunk can be slower than those
before it), well before Lambda's timeout. It needs
no bookmark to resume: what it swept is due again from now and what it ended left the index,
so the next run reads what this one did not reach, and those are the oldest overdue items,
which it takes first. Nothing is swept twice: each item's sweep is a conditional write on the
due mark read (bench/sweep.py measures a full backlog).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from time import monotonic
from typing import Any

from webhook_service import telemetry
from webhook_service.domain import MAX_ATTEMPTS, Event, Overdue, Task, event_failed_to_queue, failed_to_queue
from webhook_service.jobqueue import JobSender, config_test_job, event_job, send_many
from webhook_service.logs import logger
from webhook_service.storage import Store

REQUEUES = 1  # how many times the sweep queues a job again before it ends the task or event
BATCH = 100  # at most this many items per ByOpen partition per run; the next run takes the rest
CHUNK = 100  # items swept between two looks at the time left
WORKERS = 8  # conditional writes in flight at once (botocore's pool keeps 10 connections)
STOP_MARGIN_SECONDS = 5.0  # left unused at the end: the summary, the metrics, Lambda's own work
SEND_BATCH = 10  # SQS's most messages to one SendMessageBatch

TimeLeft = Callable[[], float]  # seconds left in the invocation


def sweep(
    store: Store,
    queue: JobSender,
    now: dt.datetime,
    after: dt.timedelta,
    test_queue: JobSender | None = None,
    time_left: TimeLeft | None = None,
) -> Counter[tuple[str, str]]:
    """Sweep once; returns how many tasks and events were (kind, `requeued` or `failed`).
    Events are queued again on `queue` (the events lane), tasks on `test_queue` (the tests
    lane; `queue` when None). With `time_left`, stops before it runs out (the rest is the
    next run's)."""
    done: Counter[tuple[str, str]] = Counter()
    overdue = sorted(store.overdue(now - after, BATCH), key=lambda item: item.due)
    slowest = 0.0
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="sweep") as pool:
        for start in range(0, len(overdue), CHUNK):
            if time_left is not None and time_left() < STOP_MARGIN_SECONDS + 2 * slowest:
                logger.info(
                    "sweep stopped before its timeout; the next run takes the rest",
                    extra={"left": len(overdue) - start, "time_left_s": round(time_left(), 3)},
                )
                break
            began = monotonic()
            chunk = overdue[start : start + CHUNK]
            lanes = {"task": test_queue or queue, "event": queue}
            for item, action in _sweep_chunk(store, lanes, chunk, now, pool):
                done[(item.kind, action)] += 1
                if (item.kind, action) == ("event", "failed"):
                    telemetry.count(telemetry.EVENTS_FAILED)  # here: the metric set is this thread's
                logger.info(
                    "overdue %s %s",
                    item.kind,
                    action,
                    extra={"organisation": item.work.organisation, f"{item.kind}_id": item.work.id, "due": item.due},
                )
            slowest = max(slowest, monotonic() - began)
    return done


def _sweep_chunk(
    store: Store, lanes: dict[str, JobSender], chunk: list[Overdue], now: dt.datetime, pool: ThreadPoolExecutor
) -> list[tuple[Overdue, str]]:
    """Sweep some overdue items at once: those with a requeue left are marked swept (each a
    conditional write) and their jobs sent, ten to a request; the rest are ended. Returns
    what was done to each, for the items that had not moved on since they were read."""
    requeue = [item for item in chunk if _may_requeue(item)]
    end = [item for item in chunk if not _may_requeue(item)]
    ending = pool.map(lambda item: _end(store, item.work, now), end)
    marking = pool.map(lambda item: store.mark_swept(item, now), requeue)
    marked = [item for item, ok in zip(requeue, marking, strict=True) if ok]
    results = [(item, action) for item, action in zip(end, ending, strict=True) if action]
    sends = []
    for kind, lane in lanes.items():
        mine = [item for item in marked if item.kind == kind]
        for first in range(0, len(mine), SEND_BATCH):
            batch = mine[first : first + SEND_BATCH]
            sends.append((batch, pool.submit(send_many, lane, [_job(item) for item in batch])))
    for batch, sent in sends:
        for item, queued in zip(batch, sent.result(), strict=True):
            if queued:
                results.append((item, "requeued"))
            else:
                # Marked swept and due again from now: the next sweep after SWEEP_AFTER ends it.
                telemetry.count(telemetry.QUEUE_SEND_FAILURES)
                logger.warning("overdue job could not be queued again", extra={"organisation": item.work.organisation})
    return results


def _job(item: Overdue) -> dict[str, Any]:
    job = open_job(item.work)
    assert job is not None  # _may_requeue said so
    return job


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


def _end(store: Store, work: Task | Event, now: dt.datetime) -> str | None:
    if isinstance(work, Task):
        ended = store.end_task(failed_to_queue(work, now))
    else:
        ended = store.save_event(event_failed_to_queue(work, now))
    return "failed" if ended else None
