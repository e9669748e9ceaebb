"""The delivery queue on the template's own SQS queue (moto in-process)."""

from __future__ import annotations

import json

import pytest

from tests.unit.support import Backing
from webhook_service.errors import DependencyError
from webhook_service.jobqueue import JobQueue
from webhook_service.lanes import config_test_job


def test_send_job_puts_one_compact_json_message_on_the_queue(backing: Backing) -> None:
    job = config_test_job("task-1", "org-1", "config-1")

    message_id = JobQueue(backing.queue_url, backing.sqs).send(job)

    messages = backing.sqs.receive_message(QueueUrl=backing.queue_url, MaxNumberOfMessages=10)["Messages"]
    (message,) = [m for m in messages if m["MessageId"] == message_id]
    assert json.loads(message["Body"]) == {
        "job": "test",
        "task": "task-1",
        "organisation": "org-1",
        "config": "config-1",
    }
    assert " " not in message["Body"]
    backing.sqs.delete_message(QueueUrl=backing.queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_send_job_to_missing_queue_raises_dependency_error(backing: Backing) -> None:
    missing = backing.queue_url.rsplit("/", 1)[0] + "/no-such-queue"

    with pytest.raises(DependencyError):
        JobQueue(missing, backing.sqs).send(config_test_job("task-1", "org-1", "config-1"))
