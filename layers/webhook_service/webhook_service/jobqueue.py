"""The delivery queues: puts jobs (webhook_service.lanes) on SQS for the deliver function.

Every message carries its organisation as `MessageGroupId`: on a standard queue that makes
SQS a fair queue, which serves quiet organisations first while one has a backlog.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from webhook_service import clients
from webhook_service.errors import DependencyError

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef


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
        entries = [
            cast("SendMessageBatchRequestEntryTypeDef", {"Id": str(n), **_message(job, 0)})
            for n, job in enumerate(jobs)
        ]
        try:
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
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


class DeadLetterQueue:
    """Receives and deletes messages of the dead-letter queue, for the sweep (ports.DeadLetters)."""

    VISIBILITY_SECONDS = 120  # a message received and not deleted (the sweep failed) comes back after this

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = cast("SQSClient", clients.client("sqs"))
        return self._client

    def receive(self, most: int) -> list[tuple[str, dict[str, Any] | None]]:
        """Up to `most` (at most 10) messages: each one's receipt and its job (None for a
        message that is not a JSON object)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max(1, min(most, 10)),
                VisibilityTimeout=self.VISIBILITY_SECONDS,
                WaitTimeSeconds=0,
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyError(f"sqs receive failed: {type(exc).__name__}") from exc
        found: list[tuple[str, dict[str, Any] | None]] = []
        for message in response.get("Messages", []):
            try:
                job = json.loads(message["Body"])
            except ValueError:
                job = None
            found.append((message["ReceiptHandle"], job if isinstance(job, dict) else None))
        return found

    def delete(self, receipt: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyError(f"sqs delete failed: {type(exc).__name__}") from exc
