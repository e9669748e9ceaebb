"""A local stand-in for the template's Schedule event sources: invokes each function at its
`rate(...)`, with an EventBridge-shaped event. DEVSTACK_SCHEDULE_SECONDS, when set, is the
period of every schedule (the template's sweep runs every 10 minutes; set 5 to watch it)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from typing import Any, Protocol

from devstack.template import Function, ScheduleSource

log = logging.getLogger("devstack.scheduler")


def scheduled_event(source: ScheduleSource, now: dt.datetime, region: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:000000000000:rule/{source.function.logical_id}{source.name}"],
        "detail": {},
    }


class Invoker(Protocol):
    """What runs a function with an event (devstack.runtime.Functions, or a test's recorder)."""

    def invoke(self, function: Function, event: dict[str, Any]) -> Any: ...


class Scheduler:
    """One thread per schedule; the first run comes one period after the start, as in AWS."""

    def __init__(self, source: ScheduleSource, functions: Invoker, period_seconds: float | None = None) -> None:
        self.source = source
        self.functions = functions
        self.period_seconds = period_seconds or source.period_seconds
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"schedule-{source.function.logical_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def run_once(self, region: str = "us-east-1") -> Any:
        self.runs += 1
        return self.functions.invoke(
            self.source.function, scheduled_event(self.source, dt.datetime.now(dt.UTC), region)
        )

    def _run(self) -> None:
        while not self._stop.wait(self.period_seconds):
            try:
                self.run_once()
            except Exception:
                log.exception("scheduled %s failed", self.source.function.logical_id)
