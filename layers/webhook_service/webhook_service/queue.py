"""The delivery queue: puts jobs on SQS for the deliver function."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from webhook_service import clients
from webhook_service.errors import DependencyError

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


def config_test_job(task_id: str, organisation: str, config_id: str) -> dict[str, Any]:
    """The message that asks the deliver function to run a config's test task. It names
    the config too, so that the task and the config are read in one request."""
    return {"job": "test", "task": task_id, "organisation": organisation, "config": config_id}


def event_job(event_id: str, organisation: str, attempt: int, not_before: int | None = None) -> dict[str, Any]:
    """The message for attempt `attempt` (1-based) of an event's delivery, not to be made
    before the unix time `not_before` (SQS delays a message 15 minutes at most, so a
    longer wait is made of several hops)."""
    job: dict[str, Any] = {"job": "event", "event": event_id, "organisation": organisation, "attempt": attempt}
    if not_before is not None:
        job["not_before"] = not_before
    return job


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

    def send(self, job: dict[str, Any], delay_seconds: int = 0) -> str:
        """Queue one job; returns the message id. Raises DependencyError if SQS refuses."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=json.dumps(job, separators=(",", ":")),
                DelaySeconds=max(0, min(delay_seconds, self.MAX_DELAY_SECONDS)),
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyError(f"sqs send failed: {type(exc).__name__}") from exc
        return response["MessageId"]
