"""The delivery queues: puts jobs on SQS for the deliver function.

Jobs travel in three lanes, each an SQS queue with its own event source (docs/isolation.md):
`events` (event attempts), `tests` (config tests: a user is waiting) and `slow` (jobs for an
endpoint that recently took longer than the fast lanes wait). Every message carries its
organisation as `MessageGroupId`: on a standard queue that makes SQS a fair queue, which
serves quiet organisations first while one has a backlog.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from webhook_service import clients
from webhook_service.errors import DependencyError
from webhook_service.ports import JobSender as JobSender  # re-exported: its home before ports.py

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


def config_test_job(task_id: str, organisation: str, config_id: str) -> dict[str, Any]:
    """The message that asks the deliver function to run a config's test task. It names
    the config too, so that the task and the config are read in one request."""
    return {"job": "test", "task": task_id, "organisation": organisation, "config": config_id}


def event_job(
    event_id: str,
    organisation: str,
    attempt: int,
    not_before: int | None = None,
    *,
    key: str | None = None,
    round_: int = 0,
) -> dict[str, Any]:
    """The message for attempt `attempt` (1-based) of an event's delivery, not to be made
    before the unix time `not_before` (SQS delays a message 15 minutes at most, so a
    longer wait is made of several hops). It names the event's key (null when it has none),
    so that the event and what routes it are read in one request, and, once the event has
    been resent, the round of attempts it belongs to (`round`: how many resends came before;
    a job of an earlier round does nothing)."""
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
    return job


class Lane(enum.StrEnum):
    EVENTS = "events"
    TESTS = "tests"
    SLOW = "slow"


def job_lane(job: dict[str, Any]) -> Lane:
    """The fast lane a job belongs to when it is not in the slow one."""
    return Lane.TESTS if job.get("job") == "test" else Lane.EVENTS


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


class JobQueue:
    """Sends jobs to one SQS queue. Give it a client, or it makes one on first use."""

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = cast("SQSClient", clients.client("sqs"))
        return self._client

    MAX_DELAY_SECONDS = 900
    MAX_BATCH = 10  # SendMessageBatch's most entries

    def send(self, job: dict[str, Any], delay_seconds: int = 0) -> str:
        """Queue one job; returns the message id. Raises DependencyError if SQS refuses."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.send_message(QueueUrl=self.queue_url, **_message(job, delay_seconds))
        except (ClientError, BotoCoreError) as exc:
            raise DependencyError(f"sqs send failed: {type(exc).__name__}") from exc
        return response["MessageId"]

    def send_batch(self, jobs: list[dict[str, Any]]) -> list[bool]:
        """Queue up to ten jobs in one request; whether each was queued (SQS may refuse some
        entries of a batch, or, failing the request, all of them)."""
        from botocore.exceptions import BotoCoreError, ClientError

        if len(jobs) > self.MAX_BATCH:
            raise ValueError(f"at most {self.MAX_BATCH} jobs to a batch, not {len(jobs)}")
        if not jobs:
            return []
        entries = [{"Id": str(n), **_message(job, 0)} for n, job in enumerate(jobs)]
        try:
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError):
            return [False] * len(jobs)
        refused = {entry["Id"] for entry in response.get("Failed", [])}
        return [str(n) not in refused for n in range(len(jobs))]


def _message(job: dict[str, Any], delay_seconds: int) -> dict[str, Any]:
    """A job as an SQS message: its JSON, its delay, and its organisation as MessageGroupId
    (the tenant, for SQS fair queues)."""
    message: dict[str, Any] = {
        "MessageBody": json.dumps(job, separators=(",", ":")),
        "DelaySeconds": max(0, min(delay_seconds, JobQueue.MAX_DELAY_SECONDS)),
    }
    if isinstance(job.get("organisation"), str):
        message["MessageGroupId"] = job["organisation"]
    return message


def send_many(sender: JobSender, jobs: list[dict[str, Any]]) -> list[bool]:
    """Queue jobs, ten to a request on an SQS queue (`JobQueue.send_batch`), one at a time on
    any other sender; whether each was queued."""
    if isinstance(sender, JobQueue):
        return [ok for first in range(0, len(jobs), JobQueue.MAX_BATCH)
                for ok in sender.send_batch(jobs[first : first + JobQueue.MAX_BATCH])]  # fmt: skip
    queued = []
    for job in jobs:
        try:
            sender.send(job)
        except DependencyError:
            queued.append(False)
        else:
            queued.append(True)
    return queued
