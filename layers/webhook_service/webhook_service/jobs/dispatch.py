"""A queue message read as one of the deliver function's jobs, and run."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from webhook_service.domain.pacing import slot_of
from webhook_service.jobs.config_tests import run_test
from webhook_service.jobs.deliverer import Deliverer, Outcome
from webhook_service.jobs.event_attempts import run_event
from webhook_service.jobs.recovery import run_recover
from webhook_service.lanes import EventJob, Lane, job_lane


class BadJobError(Exception):
    """A queue message this function cannot read: a bug upstream, left for the DLQ."""


def _is_event_job(job: dict[str, Any]) -> bool:
    return (
        job.get("job") == "event"
        and isinstance(job.get("event"), str)
        and isinstance(job.get("attempt"), int)
        and isinstance(job.get("key"), str | None)
        and isinstance(job.get("round", 0), int)
        and isinstance(job.get("waited", 0), int)
        and isinstance(job.get("sweeps", 0), int)
    )


def parse_job(body: str) -> dict[str, Any]:
    try:
        job = json.loads(body)
    except ValueError:
        raise BadJobError("the message is not JSON") from None
    if not isinstance(job, dict) or not isinstance(job.get("organisation"), str):
        raise BadJobError("the message is not a known job")
    if (job.get("job") in ("test", "recover") and isinstance(job.get("task"), str)) or _is_event_job(job):
        return job
    raise BadJobError("the message is not a known job")


def handle_job(
    deliverer: Deliverer, body: str, lane: Lane | None = None, time_left: Callable[[], float] | None = None
) -> Outcome:
    """Run one job that arrived in `lane` (None: its fast lane). `time_left` gives the
    seconds left in the invocation, which bound how long an attempt's claim holds."""
    job = parse_job(body)
    lane = lane or job_lane(job)
    if job["job"] == "recover":
        return run_recover(deliverer, job["organisation"], job["task"], time_left, lane)
    if job["job"] == "test":
        return run_test(deliverer, job["organisation"], job["task"], job.get("config"), lane, slot_of(job.get("slot")))
    return run_event(deliverer, EventJob.of(job), lane, time_left)
