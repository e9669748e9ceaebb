"""The local stack's SQS event source (devstack.poller.EventSource) runs a queue as Lambda
does: up to MaximumConcurrency invocations at once, each in a worker process of its own,
warm workers reused, partial batch responses honoured, and a worker that outlives the
function's Timeout killed with its batch left in the queue. SQS is moto in-process; the
function is a small handler written for each test, run in real worker processes."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.poller import EventSource
from devstack.template import Function, QueueSource
from tests.unit.support import Backing

WAIT_SECONDS = 30.0  # every wait below is bounded by this

HANDLER = """
import json, os, pathlib, time

def handler(event, context):
    failures = []
    for record in event["Records"]:
        job = json.loads(record["body"])
        folder = pathlib.Path(job["folder"])
        (folder / f"{job['name']}.{os.getpid()}.running").write_text(str(context.get_remaining_time_in_millis()))
        for _ in range(600):  # until the test releases it, at most 30 s
            if (folder / "release").exists():
                break
            time.sleep(0.05)
        if job.get("sleep"):
            time.sleep(job["sleep"])
        if job.get("raise"):
            raise RuntimeError("the handler failed")
        if job.get("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
        (folder / f"{job['name']}.{os.getpid()}.done").write_text("")
    return {"batchItemFailures": failures}
"""


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"still waiting for {what} after {WAIT_SECONDS} s")


class Harness:
    def __init__(self, backing: Backing, folder: Path, timeout: float, concurrency: int, batch_size: int) -> None:
        self.backing = backing
        self.folder = folder
        (folder / "code").mkdir()
        (folder / "code" / "app.py").write_text(HANDLER)
        self.queue_url = backing.sqs.create_queue(
            QueueName=f"eventsource-{uuid.uuid4().hex[:12]}", Attributes={"VisibilityTimeout": "60"}
        )["QueueUrl"]
        function = Function(
            logical_id="FakeFunction",
            code_dir=folder / "code",
            handler="app.handler",
            environment={},
            timeout_seconds=timeout,
        )
        self.source = EventSource(
            QueueSource(
                queue_logical_id="FakeQueue",
                function=function,
                batch_size=batch_size,
                report_failures=True,
                max_concurrency=concurrency,
            ),
            self.queue_url,
        )

    def send(self, name: str, **job: Any) -> None:
        self.backing.sqs.send_message(
            QueueUrl=self.queue_url, MessageBody=json.dumps({"name": name, "folder": str(self.folder), **job})
        )

    def marks(self, kind: str) -> list[tuple[str, int]]:
        found = []
        for path in self.folder.glob(f"*.{kind}"):
            name, pid, _ = path.name.split(".")
            found.append((name, int(pid)))
        return sorted(found)

    def release(self) -> None:
        (self.folder / "release").write_text("")

    def counts(self) -> tuple[int, int]:
        attributes = self.backing.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def make(backing: Backing, tmp_path: Path) -> Iterator[Any]:
    made: list[Harness] = []

    def build(timeout: float = 10.0, concurrency: int = 3, batch_size: int = 1) -> Harness:
        harness = Harness(backing, tmp_path, timeout, concurrency, batch_size)
        made.append(harness)
        return harness

    yield build
    for harness in made:
        harness.release()
        harness.source.stop(drain_seconds=1)


def test_event_source_runs_maximum_concurrency_invocations_at_once_each_in_its_own_process(make: Any) -> None:
    harness = make(concurrency=3)
    for n in range(6):
        harness.send(f"job{n}")
    harness.source.start()

    wait_until(lambda: len(harness.marks("running")) == 3, "three invocations")
    running = harness.marks("running")
    harness.release()
    wait_until(lambda: len(harness.marks("done")) == 6, "six invocations")
    wait_until(lambda: harness.counts() == (0, 0), "every message deleted")

    assert len({pid for _, pid in running}) == 3  # three processes at once, none of them this one
    assert all(pid != os.getpid() for _, pid in running)
    assert harness.source.peak == 3
    assert harness.source.invocations == 6
    assert harness.source.workers_started == 3


def test_event_source_reuses_a_warm_worker_for_invocations_one_after_another(make: Any) -> None:
    harness = make(concurrency=3)
    harness.release()
    harness.source.start()

    for n in range(3):
        harness.send(f"job{n}")
        # Ended as the event source sees it: its worker is back among the idle ones. The
        # handler's `done` mark comes earlier, before the answer reaches the poller.
        wait_until(lambda n=n: harness.source.invocations == n + 1 and harness.source.running == 0, f"job {n}")

    assert len({pid for _, pid in harness.marks("done")}) == 1
    assert harness.source.workers_started == 1


def test_context_counts_down_from_the_function_timeout(make: Any) -> None:
    harness = make(timeout=7.0)
    harness.release()
    harness.send("job")
    harness.source.start()

    wait_until(lambda: len(harness.marks("done")) == 1, "the invocation")

    (mark,) = harness.folder.glob("*.running")
    assert 5000 < int(mark.read_text()) <= 7000


def test_partial_batch_response_deletes_only_the_jobs_that_succeeded(make: Any) -> None:
    harness = make(batch_size=10)
    harness.release()
    harness.send("good1")
    harness.send("bad", fail=True)
    harness.send("good2")
    harness.source.start()

    wait_until(lambda: len(harness.marks("done")) == 3, "the batch")
    wait_until(lambda: harness.counts() == (0, 1), "the two good jobs deleted")


def test_handler_that_raises_leaves_its_batch_in_the_queue(make: Any) -> None:
    harness = make()
    harness.release()
    harness.send("boom", **{"raise": True})
    harness.source.start()

    wait_until(lambda: harness.source.invocations == 1 and harness.source.running == 0, "the invocation")

    assert harness.counts() == (0, 1)  # in flight until the visibility timeout, not deleted


def test_invocation_past_the_function_timeout_is_killed_and_its_batch_left_in_the_queue(make: Any) -> None:
    harness = make(timeout=1.0)
    harness.release()
    harness.send("hangs", sleep=60)
    harness.source.start()

    wait_until(lambda: len(harness.marks("running")) == 1, "the invocation to start")
    ((_, pid),) = harness.marks("running")
    wait_until(lambda: harness.source.invocations == 1 and harness.source.running == 0, "the timeout")

    assert harness.marks("done") == []
    assert harness.counts() == (0, 1)
    assert not Path(f"/proc/{pid}").exists()  # the environment was stopped
    harness.send("next")
    wait_until(lambda: len(harness.marks("done")) == 1, "a new worker")
    assert harness.source.workers_started == 2
