"""The overdue sweep: no task or event stays `pending` or `processing` for ever.

A task or event waits on a job in the delivery queue. The job can be lost to us: it failed
for our own reasons on every receive and went to the dead-letter queue, or (a task's) SQS
refused it and marking the task `failed` failed too. The sweep (the `sweep` function, on a
schedule) finds them, and

- the first time, queues the job again (a task's test, an event's attempt): a queue or a
  table that was down for a while costs nothing;
- the second time, ends the task or event `failed` with error `queue-unavailable`, as
  docs/design.md §6.4 ends a test whose job could not be queued. A config keeps its state
  (it stays re-testable).

Tasks are found through the sparse `ByOpen` index, once due for longer than
`SWEEP_AFTER_MINUTES` (default 60, far beyond the 15 minutes SQS takes to give a job up); a
recover task is due again from each of its steps, so only one whose steps stopped is found.
Events are never in an index of open work: each event job is sent before the write it
continues (jobs.event_attempts), so an event's job is lost only to the dead-letter queue,
and the sweep takes event jobs from there (its `sweeps` counts the times).

Every write is conditional on what was read, so a job that turns up late and the sweep
never both win: a job for an ended task or a claimed attempt does nothing.

A run reads up to BATCH items of each ByOpen partition (6,400 at most) and takes them oldest
first, CHUNK at a time: a chunk's writes run WORKERS at once and its jobs go to SQS ten to a
request; then the dead-letter queue, ten messages at a time. Before each chunk and each ten
it checks the invocation's time left and stops when that is less than STOP_MARGIN_SECONDS
plus twice its slowest chunk so far (one chunk can be slower than those before it), well
before Lambda's timeout. It needs no bookmark to resume: what it swept is due again from
now, what it ended left the index, and a dead letter it did not reach is still there, so the
next run takes what this one did not, oldest first. Nothing is swept twice: each item's
sweep is a conditional write on the due mark read (bench/sweep.py measures a full backlog).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from time import monotonic
from typing import Any

from webhook_service import telemetry
from webhook_service.domain.configs import TASK_TYPE_RECOVER, Task, failed_to_queue
from webhook_service.domain.events import Event, event_failed_to_queue
from webhook_service.domain.queries import Overdue
from webhook_service.domain.retries import MAX_ATTEMPTS
from webhook_service.lanes import EventJob, config_test_job, event_job, recover_job, send_many
from webhook_service.logs import logger
from webhook_service.ports import DeadLetters, JobSender, Repositories

REQUEUES = 1  # how many times the sweep queues a job again before it ends the task or event
BATCH = 100  # at most this many items per ByOpen partition per run; the next run takes the rest
CHUNK = 100  # items swept between two looks at the time left
WORKERS = 8  # conditional writes in flight at once (botocore's pool keeps 10 connections)
STOP_MARGIN_SECONDS = 5.0  # left unused at the end: the summary, the metrics, Lambda's own work
DEAD_LETTERS_PER_RUN = 500  # dead-letter messages one run reads at most; the next run takes the rest

TimeLeft = Callable[[], float]  # seconds left in the invocation


class _Clock:
    """The run's budget: whether there is time for one more step as slow as the slowest."""

    def __init__(self, time_left: TimeLeft | None) -> None:
        self.time_left = time_left
        self.slowest = 0.0

    def enough(self) -> bool:
        return self.time_left is None or self.time_left() >= STOP_MARGIN_SECONDS + 2 * self.slowest

    def timed(self, began: float) -> None:
        self.slowest = max(self.slowest, monotonic() - began)


def sweep(
    store: Repositories,
    queue: JobSender,
    now: dt.datetime,
    after: dt.timedelta,
    test_queue: JobSender | None = None,
    time_left: TimeLeft | None = None,
    dead_letters: DeadLetters | None = None,
) -> Counter[tuple[str, str]]:
    """Sweep once; returns how many tasks and events were (kind, `requeued` or `failed`).
    Events are queued again on `queue` (the events lane), tasks on `test_queue` (the tests
    lane; `queue` when None). With `time_left`, stops before it runs out (the rest is the
    next run's)."""
    clock = _Clock(time_left)
    done = _sweep_open(store, test_queue or queue, now, after, clock)
    if dead_letters is not None:
        done.update(sweep_dead_events(store, dead_letters, queue, now, clock))
    return done


def _sweep_open(
    store: Repositories, lane: JobSender, now: dt.datetime, after: dt.timedelta, clock: _Clock
) -> Counter[tuple[str, str]]:
    """The overdue test tasks of ByOpen, oldest first, a chunk at a time."""
    done: Counter[tuple[str, str]] = Counter()
    overdue = sorted(store.overdue.find(now - after, BATCH), key=lambda item: item.due)
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="sweep") as pool:
        for start in range(0, len(overdue), CHUNK):
            if not clock.enough():
                logger.info(
                    "sweep stopped before its timeout; the next run takes the rest",
                    extra={"left": len(overdue) - start},
                )
                break
            began = monotonic()
            for item, action in _sweep_chunk(store, lane, overdue[start : start + CHUNK], now, pool):
                done[(item.kind, action)] += 1
                logger.info(
                    "overdue %s %s",
                    item.kind,
                    action,
                    extra={"organisation": item.work.organisation, f"{item.kind}_id": item.work.id, "due": item.due},
                )
            clock.timed(began)
    return done


def _sweep_chunk(
    store: Repositories, lane: JobSender, chunk: list[Overdue], now: dt.datetime, pool: ThreadPoolExecutor
) -> list[tuple[Overdue, str]]:
    """Sweep some overdue items at once: those with a requeue left are marked swept (each a
    conditional write) and their jobs sent, ten to a request; the rest are ended. Returns
    what was done to each, for the items that had not moved on since they were read."""
    requeue = [item for item in chunk if _may_requeue(item)]
    end = [item for item in chunk if not _may_requeue(item)]
    ending = pool.map(lambda item: _end(store, item.work, now), end)
    marking = pool.map(lambda item: store.overdue.mark_swept(item, now), requeue)
    marked = [item for item, ok in zip(requeue, marking, strict=True) if ok]
    results = [(item, action) for item, action in zip(end, ending, strict=True) if action]
    for item, queued in zip(marked, send_many(lane, [_job(item) for item in marked]), strict=True):
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
    """The job that carries a task or event that has not ended on: a test task's test, a
    recover task's next step (from the cursor it saved); an event's attempt that was claimed
    and never finished (taken over once its claim runs out), or its next attempt, not before
    it is due. None for an event with no attempt left. The sweep sends a task's; the local
    stack sends each for everything open when it starts again (its queue is not kept)."""
    if isinstance(work, Task):
        if work.type == TASK_TYPE_RECOVER:  # its next step, from the cursor it saved
            return recover_job(work.id, work.organisation, work.target)
        return config_test_job(work.id, work.organisation, work.target)
    attempt = work.attempts if work.claimed_until is not None else work.attempts + 1
    if attempt > MAX_ATTEMPTS or attempt < 1:
        return None
    return event_job(
        work.id,
        work.organisation,
        attempt,
        not_before=work.next_attempt_at,
        key=work.key,
        round_=work.resends,
    )


def _may_requeue(overdue: Overdue) -> bool:
    return overdue.sweeps < REQUEUES and open_job(overdue.work) is not None


def _end(store: Repositories, work: Task | Event, now: dt.datetime) -> str | None:
    if isinstance(work, Task):
        ended = store.configs.end_task(failed_to_queue(work, now))
    else:
        ended = store.events.save(event_failed_to_queue(work, now))
    return "failed" if ended else None


def sweep_dead_events(
    store: Repositories, dead_letters: DeadLetters, queue: JobSender, now: dt.datetime, clock: _Clock | None = None
) -> Counter[tuple[str, str]]:
    """Take event jobs back from the dead-letter queue: the first time a job comes back, it
    is queued again (`sweeps` + 1); the second, its event is ended `failed` /
    `queue-unavailable` if it is still pending in the job's round (the write is
    conditional on the event as read). Other messages (test jobs, which ByOpen covers, and
    what is not a job) are left there for the operator."""
    clock = clock or _Clock(None)
    done: Counter[tuple[str, str]] = Counter()
    for _ in range(DEAD_LETTERS_PER_RUN // 10):
        if not clock.enough():
            break
        began = monotonic()
        received = dead_letters.receive(10)
        if not received:
            break
        for receipt, message in received:
            if message is None or message.get("job") != "event":
                continue
            action = _take_back(store, queue, EventJob.of(message), now)
            dead_letters.delete(receipt)
            if action:
                done[("event", action)] += 1
                logger.info("dead event job %s", action, extra={"event_id": message["event"]})
        clock.timed(began)
    return done


def _take_back(store: Repositories, queue: JobSender, job: EventJob, now: dt.datetime) -> str | None:
    if job.sweeps < REQUEUES:
        queue.send(replace(job, sweeps=job.sweeps + 1, waited=0).message())
        return "requeued"
    event = store.events.get(job.organisation, job.event)
    if event is None or event.ended or event.resends != job.round:
        return None
    if not store.events.save(event_failed_to_queue(event, now)):
        return None
    telemetry.count(telemetry.EVENTS_FAILED)
    return "failed"
