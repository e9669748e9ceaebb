"""A local stand-in for Lambda's SQS event source mapping: receives batches, invokes the
function, and deletes what succeeded (honouring partial batch responses)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import boto3

from devstack.runtime import Functions
from devstack.template import QueueSource

log = logging.getLogger("devstack.poller")


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def settle(messages: list[dict[str, Any]], result: Any, report_failures: bool) -> list[dict[str, Any]]:
    """The messages to delete after an invocation, as Lambda decides it: all of them on
    success, none if the function raised (result None), all but the reported failures."""
    if result is None:
        return []
    if not report_failures or not isinstance(result, dict):
        return messages
    failed = {f.get("itemIdentifier") for f in result.get("batchItemFailures", [])}
    return [m for m in messages if m["MessageId"] not in failed]


class Poller:
    """One thread per queue event source of the template."""

    def __init__(self, source: QueueSource, queue_url: str, functions: Functions, wait_seconds: int = 1) -> None:
        self.source = source
        self.queue_url = queue_url
        self.functions = functions
        self.wait_seconds = wait_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poller-{source.function.logical_id}", daemon=True)
        self._sqs = boto3.client("sqs")
        self._arn = self._sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.wait_seconds + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("polling %s failed", self.source.queue_logical_id)
                self._stop.wait(1)

    def poll_once(self) -> int:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(self.source.batch_size, 10),
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = [dict(m) for m in response.get("Messages", [])]
        if not messages:
            return 0
        event = sqs_event(messages, self._arn, self._sqs.meta.region_name)
        try:
            result = self.functions.invoke(self.source.function, event)
        except Exception:
            log.exception("%s raised; the batch will be retried", self.source.function.logical_id)
            result = None
        done = settle(messages, result, self.source.report_failures)
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)
