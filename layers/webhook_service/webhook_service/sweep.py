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

Test tasks are found through the sparse `ByOpen` index, once due for longer than
`SWEEP_AFTER_MINUTES` (default 60, far beyond the 15 minutes SQS takes to give a job up).
Events are never in an index of open work: each event job is sent before the write it
continues (jobs.event_attempts), so an event's job is lost only to the dead-letter queue,
and the sweep takes event jobs from there (its `sweeps` counts the times).

Every write is conditional on what was read, so a job that turns up late and the sweep
never both win: a job for an ended task or a claimed attempt does nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import replace
from typing import Any

from webhook_service import telemetry
from webhook_service.domain.configs import Task, failed_to_queue
from webhook_service.domain.events import Event, event_failed_to_queue
from webhook_service.domain.queries import Overdue
from webhook_service.domain.retries import MAX_ATTEMPTS
from webhook_service.errors import DependencyError
from webhook_service.lanes import EventJob, config_test_job, event_job
from webhook_service.logs import logger
from webhook_service.ports import DeadLetters, JobSender, Repositories

REQUEUES = 1  # how many times the sweep queues a job again before it ends the task or event
BATCH = 100  # at most this many items per ByOpen partition per run; the next run takes the rest


def sweep(
    store: Repositories,
    queue: JobSender,
    now: dt.datetime,
    after: dt.timedelta,
    test_queue: JobSender | None = None,
    dead_letters: DeadLetters | None = None,
) -> Counter[tuple[str, str]]:
    """Sweep once; returns how many tasks and events were (kind, `requeued` or `failed`).
    Events are queued again on `queue` (the events lane), tasks on `test_queue` (the tests
    lane; `queue` when None)."""
    done: Counter[tuple[str, str]] = Counter()
    if dead_letters is not None:
        done.update(sweep_dead_events(store, dead_letters, queue, now))
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
    """The job that carries a task or event that has not ended on: a task's test; an event's
    attempt that was claimed and never finished (taken over once its claim runs out), or its
    next attempt, not before it is due. None for an event with no attempt left. The sweep
    sends a task's; the local stack sends each for everything open when it starts again
    (its queue is not kept)."""
    if isinstance(work, Task):
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


DEAD_LETTERS_PER_RUN = 500  # dead-letter messages one run reads at most; the next run takes the rest


def sweep_dead_events(
    store: Repositories, dead_letters: DeadLetters, queue: JobSender, now: dt.datetime
) -> Counter[tuple[str, str]]:
    """Take event jobs back from the dead-letter queue: the first time a job comes back, it
    is queued again (`sweeps` + 1); the second, its event is ended `failed` /
    `queue-unavailable` if it is still pending in the job's round (the write is
    conditional on the event as read). Other messages (test jobs, which ByOpen covers, and
    what is not a job) are left there for the operator."""
    done: Counter[tuple[str, str]] = Counter()
    for _ in range(DEAD_LETTERS_PER_RUN // 10):
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
