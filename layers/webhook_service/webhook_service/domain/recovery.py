"""Recovering a config's receiver after an outage: the window a recover task resends, its
progress, how many events one step takes and how long the next step waits (docs/design.md §19.2).

A recover task walks its window's `failed` events oldest first, a step at a time; each step
resends at most `step_size(rate_limit)` of them, about a minute of the config's rate, so
that the resent jobs on the queue never hold more than a step's worth of waiting for their
pacing slots, and the next step comes when the step's deliveries are due to be done."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from typing import Any

from webhook_service.domain.configs import TASK_TYPE_RECOVER, Task, TaskState, WebhookConfig
from webhook_service.domain.ids import new_id
from webhook_service.domain.pacing import LONGEST_HOP_SECONDS, SPACING_SLACK
from webhook_service.timefmt import format_datetime, parse_datetime

RECOVER_DAYS_BACK = 14  # `since` at most this many days before the request
CLOCK_ALLOWANCE = dt.timedelta(seconds=60)  # an `until` this far ahead of our clock is taken as now
STEP_SECONDS_OF_RATE = 60  # a paced config's step resends about this many seconds of its rate
STEP_LEAST = 10  # events a step resends at most, however slow the rate
STEP_MOST = 250  # ... and however fast (or unpaced)
STEP_BUDGET_SECONDS = 10.0  # a step stops taking events after this long (the deliver function has 30 s)


@dataclass(frozen=True)
class Progress:
    """What a recover task shows in its `result`: its window, how many `failed` events of
    this config it found so far, how many it resent, and how many it left (their route now
    goes elsewhere, or another resend re-opened them first)."""

    since: dt.datetime
    until: dt.datetime
    found: int = 0
    resent: int = 0
    skipped: int = 0

    def result(self) -> dict[str, Any]:
        return {
            "since": format_datetime(self.since),
            "until": format_datetime(self.until),
            "found": self.found,
            "resent": self.resent,
            "skipped": self.skipped,
        }

    def counted(self, resent: bool) -> Progress:
        """One more event found: resent, or skipped."""
        if resent:
            return replace(self, found=self.found + 1, resent=self.resent + 1)
        return replace(self, found=self.found + 1, skipped=self.skipped + 1)


def progress_of(task: Task) -> Progress:
    """A recover task's progress, from its `result`."""
    result = task.result or {}
    return Progress(
        since=parse_datetime(result["since"]),
        until=parse_datetime(result["until"]),
        found=int(result.get("found", 0)),
        resent=int(result.get("resent", 0)),
        skipped=int(result.get("skipped", 0)),
    )


def new_recover_task(config: WebhookConfig, key: str, since: dt.datetime, until: dt.datetime, now: dt.datetime) -> Task:
    return Task(
        id=new_id(),
        organisation=config.organisation,
        key=key,
        type=TASK_TYPE_RECOVER,
        target=config.id,
        target_version=config.version,
        state=TaskState.PENDING,
        date_created=now,
        result=Progress(since, until).result(),
        counted=True,  # an open task of its organisation's, as a test is, until it ends
    )


def step_size(rate: int | None) -> int:
    """How many events one step resends at most: a minute of the config's rate, within
    STEP_LEAST..STEP_MOST (STEP_MOST for an unpaced config)."""
    if rate is None:
        return STEP_MOST
    return min(STEP_MOST, max(STEP_LEAST, rate * STEP_SECONDS_OF_RATE))


def next_step_delay(resent: int, rate: int | None, elapsed: float = 0.0) -> int:
    """Whole seconds until the next step: how long the `resent` deliveries of this step take
    at the config's paced rate (slots are 1.05 / rate apart), less the `elapsed` seconds the
    step itself took (its first resends were delivering meanwhile), so the queue never holds
    much more than a step of jobs waiting for their slots; none for an unpaced config."""
    if rate is None or resent == 0:
        return 0
    due = resent * (1 + SPACING_SLACK) / rate - elapsed
    return min(LONGEST_HOP_SECONDS, max(0, math.ceil(due)))


def recovered(task: Task, progress: Progress, now: dt.datetime) -> Task:
    """The task at the end of its window."""
    return replace(
        task,
        state=TaskState.SUCCEEDED,
        result=progress.result(),
        date_started=task.date_started or now,
        date_completed=now,
    )
