"""The local stack runs the template's Schedule event sources as EventBridge would."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from devstack.scheduler import Scheduler
from devstack.template import Function, ScheduleSource, load_template, rate_seconds, schedules


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(10 minutes)", 600), ("rate(1 minute)", 60), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rate_expressions_give_their_period(expression: str, seconds: int) -> None:
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize("expression", ["cron(0 12 * * ? *)", "rate(10 fortnights)", "rate(-1 minutes)"])
def test_other_schedule_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        rate_seconds(expression)


def test_the_template_schedules_the_sweep_every_10_minutes() -> None:
    (source,) = schedules(load_template())

    assert source.function.logical_id == "SweepFunction"
    assert source.period_seconds == 600


class RecordingFunctions:
    def __init__(self, runs: int) -> None:
        self.events: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.runs = runs

    def invoke(self, function: Function, event: dict[str, Any]) -> Any:
        self.events.append(event)
        if len(self.events) >= self.runs:
            self.done.set()
        return {}


def test_the_scheduler_invokes_the_function_each_period_with_a_scheduled_event() -> None:
    function = Function(
        logical_id="SweepFunction", code_dir=Path("functions/sweep"), handler="app.handler", environment={}
    )
    functions = RecordingFunctions(runs=2)
    scheduler = Scheduler(ScheduleSource("Every", function, 600), functions, period_seconds=0.05)

    scheduler.start()
    try:
        assert functions.done.wait(5)
    finally:
        scheduler.stop()

    first = functions.events[0]
    assert first["source"] == "aws.events"
    assert first["detail-type"] == "Scheduled Event"
    assert first["resources"][0].endswith(":rule/SweepFunctionEvery")
    assert len({e["id"] for e in functions.events}) == len(functions.events)
