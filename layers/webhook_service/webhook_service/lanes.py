"""Delivery jobs and the lanes they travel in: the message that asks for a config's test or
an event's attempt, and which lane's queue takes it (docs/isolation.md).

Jobs travel in three lanes, each an SQS queue with its own event source: `events` (event
attempts), `tests` (config tests: a user is waiting; and the steps of a config's recovery)
and `slow` (jobs for an endpoint that
recently took longer than the fast lanes wait)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from webhook_service.domain.pacing import Slot, slot_of
from webhook_service.errors import DependencyError
from webhook_service.ports import JobSender


def config_test_job(task_id: str, organisation: str, config_id: str, slot: Slot | None = None) -> dict[str, Any]:
    """The message that asks the deliver function to run a config's test task. It names
    the config too, so that the task and the config are read in one request, and the
    pacing slot it holds when it was sent back to wait for it (domain.pacing)."""
    job: dict[str, Any] = {"job": "test", "task": task_id, "organisation": organisation, "config": config_id}
    if slot is not None:
        job["slot"] = slot.message()
    return job


def recover_job(task_id: str, organisation: str, config_id: str) -> dict[str, Any]:
    """The message that asks the deliver function for the next step of a config's recover
    task (docs/design.md §19.2): the task holds where the step starts."""
    return {"job": "recover", "task": task_id, "organisation": organisation, "config": config_id}


def event_job(
    event_id: str,
    organisation: str,
    attempt: int,
    not_before: int | None = None,
    *,
    key: str | None = None,
    round_: int = 0,
    waited: int = 0,
    sweeps: int = 0,
    slot: Slot | None = None,
) -> dict[str, Any]:
    """The message for attempt `attempt` (1-based) of an event's delivery, not to be made
    before the unix time `not_before` (SQS delays a message 15 minutes at most, so a
    longer wait is made of several hops). It names the event's key (null when it has none),
    so that the event and what routes it are read in one request, and, once the event has
    been resent, the round of attempts it belongs to (`round`: how many resends came before;
    a job of an earlier round does nothing). A job is sent before the write it continues:
    `waited` counts the short waits of one that arrived before that write, `sweeps` the
    times the sweep took it back from the dead-letter queue, and `slot` the pacing slot it
    holds when it was sent back to wait for it (domain.pacing)."""
    job: dict[str, Any] = {
        "job": "event",
        "event": event_id,
        "organisation": organisation,
        "attempt": attempt,
        "key": key,
    }
    if not_before is not None:
        job["not_before"] = not_before
    if round_:
        job["round"] = round_
    if waited:
        job["waited"] = waited
    if sweeps:
        job["sweeps"] = sweeps
    if slot is not None:
        job["slot"] = slot.message()
    return job


@dataclass(frozen=True)
class EventJob:
    """An event job as its message says it (`event_job`). `key` is the event's key when the
    message names it (`key_named`: jobs made before 0.1.0 do not)."""

    event: str
    organisation: str
    attempt: int
    not_before: int | None = None
    key: str | None = None
    key_named: bool = True
    round: int = 0
    waited: int = 0
    sweeps: int = 0
    slot: Slot | None = None

    @classmethod
    def of(cls, job: dict[str, Any]) -> EventJob:
        return cls(
            event=job["event"],
            organisation=job["organisation"],
            attempt=job["attempt"],
            not_before=job.get("not_before"),
            key=job.get("key"),
            key_named="key" in job,
            round=job.get("round", 0),
            waited=job.get("waited", 0),
            sweeps=job.get("sweeps", 0),
            slot=slot_of(job.get("slot")),
        )

    def message(self) -> dict[str, Any]:
        return event_job(
            self.event,
            self.organisation,
            self.attempt,
            self.not_before,
            key=self.key,
            round_=self.round,
            waited=self.waited,
            sweeps=self.sweeps,
            slot=self.slot,
        )


class Lane(enum.StrEnum):
    EVENTS = "events"
    TESTS = "tests"
    SLOW = "slow"


def job_lane(job: dict[str, Any]) -> Lane:
    """The fast lane a job belongs to when it is not in the slow one."""
    return Lane.TESTS if job.get("job") in ("test", "recover") else Lane.EVENTS


def lane_of_source(source_arn: str, urls: dict[Lane, str]) -> Lane | None:
    """The lane whose queue a record came from (its event source ARN ends with the queue's
    name, as its URL does); None when no lane, or more than one, has that queue."""
    name = source_arn.rsplit(":", 1)[-1]
    found = [lane for lane, url in urls.items() if url and url.rstrip("/").rsplit("/", 1)[-1] == name]
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class Lanes:
    """Where each lane's jobs are sent. A lane without a queue of its own shares the events
    lane's; without a slow lane nothing is ever moved to one."""

    events: JobSender
    tests: JobSender | None = None
    slow: JobSender | None = None

    def queue(self, lane: Lane) -> JobSender:
        if lane is Lane.TESTS and self.tests is not None:
            return self.tests
        if lane is Lane.SLOW and self.slow is not None:
            return self.slow
        return self.events

    def send(self, job: dict[str, Any], delay_seconds: int = 0) -> str:
        """Send a job to its own fast lane (a test to the tests lane, an event to the events lane)."""
        return self.queue(job_lane(job)).send(job, delay_seconds)


SEND_BATCH = 10  # SQS's most messages to one SendMessageBatch


def send_many(sender: JobSender, jobs: list[dict[str, Any]]) -> list[bool]:
    """Queue jobs, ten to a request where the sender can (an SQS queue's `send_batch`), one
    at a time on any other; whether each was queued."""
    send_batch = getattr(sender, "send_batch", None)
    if send_batch is not None:
        return [ok for first in range(0, len(jobs), SEND_BATCH) for ok in send_batch(jobs[first : first + SEND_BATCH])]
    queued = []
    for job in jobs:
        try:
            sender.send(job)
        except DependencyError:
            queued.append(False)
        else:
            queued.append(True)
    return queued
