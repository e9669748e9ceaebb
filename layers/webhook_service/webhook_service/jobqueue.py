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

        kwargs: dict[str, Any] = {}
        if isinstance(job.get("organisation"), str):
            kwargs["MessageGroupId"] = job["organisation"]  # the tenant, for SQS fair queues
        try:
            response = self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=json.dumps(job, separators=(",", ":")),
                DelaySeconds=max(0, min(delay_seconds, self.MAX_DELAY_SECONDS)),
                **kwargs,
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyError(f"sqs send failed: {type(exc).__name__}") from exc
        return response["MessageId"]
