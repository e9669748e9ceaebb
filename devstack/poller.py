"""A local stand-in for Lambda's SQS event source mapping: receives batches while fewer than
the source's `MaximumConcurrency` invocations run, runs each invocation in a worker process of
its own (`devstack.workers`), and deletes what succeeded (honouring partial batch responses)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import boto3

from devstack.template import QueueSource
from devstack.workers import Invocation, Worker

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


DEFAULT_CONCURRENCY = 5  # Lambda starts an SQS event source at five concurrent batches


class EventSource:
    """One SQS event source of the template, run as Lambda runs it.

    - At most `MaximumConcurrency` invocations at once: a batch is received only when a slot
      is free, so a message never waits inside the poller for a worker.
    - Each invocation runs in a worker process: an idle warm one, else a new one (Lambda's
      scaling: environments are made when every existing one is busy, and kept warm).
    - An invocation that outlives the function's Timeout, or whose function raised, leaves
      its whole batch in the queue, to come back after the queue's visibility timeout.
    - Otherwise every message the function did not report as failed is deleted.

    Lambda also waits up to `MaximumBatchingWindowInSeconds` to fill a batch; this takes
    whatever is visible at once, so it never adds that wait.
    """

    def __init__(self, source: QueueSource, queue_url: str, wait_seconds: int = 1) -> None:
        self.source = source
        self.queue_url = queue_url
        self.wait_seconds = wait_seconds
        self.limit = int(source.max_concurrency or DEFAULT_CONCURRENCY)
        self.invocations = 0
        self.running = 0
        self.peak = 0  # the most invocations that ran at once
        self.workers_started = 0
        self._slots = threading.BoundedSemaphore(self.limit)
        self._lock = threading.Lock()
        self._idle: list[Worker] = []
        self._workers: list[Worker] = []
        self._threads: set[threading.Thread] = set()
        self._stop = threading.Event()
        name = f"events-{source.function.logical_id}-{source.queue_logical_id}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._sqs = boto3.client("sqs")
        self._arn = self._sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain_seconds: float = 5.0) -> None:
        """Stop receiving, give running invocations `drain_seconds` to end, then stop every
        worker (a batch cut short comes back from the queue later, as on Lambda)."""
        self._stop.set()
        self._thread.join(timeout=self.wait_seconds + 5)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=drain_seconds)
        with self._lock:
            workers, self._workers, self._idle = list(self._workers), [], []
        closing = [threading.Thread(target=worker.close) for worker in workers]  # each waits for its process
        for thread in closing:
            thread.start()
        for thread in closing:
            thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            try:
                messages = self._receive()
            except Exception:
                self._slots.release()
                log.exception("polling %s failed", self.source.queue_logical_id)
                self._stop.wait(1)
                continue
            if not messages:
                self._slots.release()
                continue
            thread = threading.Thread(target=self._invoke, args=(messages,), name=f"{self._thread.name}-invoke")
            with self._lock:
                self._threads.add(thread)
            thread.start()

    def _receive(self) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(self.source.batch_size, 10),
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [dict(m) for m in response.get("Messages", [])]

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        try:
            with self._lock:
                self.invocations += 1
                self.running += 1
                self.peak = max(self.peak, self.running)
            worker = self._checkout()
            started = time.monotonic()
            invocation = worker.invoke(sqs_event(messages, self._arn, self._sqs.meta.region_name))
            self._checkin(worker)
            if invocation.ok:  # make dev's one line an invocation, as the gateway's one a request
                log.info(
                    "%s <- %s: %d message%s (%.1f ms)",
                    self.source.function.logical_id,
                    self.source.queue_logical_id,
                    len(messages),
                    "" if len(messages) == 1 else "s",
                    (time.monotonic() - started) * 1000,
                )
            else:
                log.warning(
                    "%s %s; its batch of %d comes back after the visibility timeout",
                    self.source.function.logical_id,
                    "timed out" if invocation.status == "timeout" else f"failed ({invocation.status})",
                    len(messages),
                )
            self._settle(messages, invocation)
        except Exception:
            log.exception("invoking %s failed", self.source.function.logical_id)
        finally:
            with self._lock:
                self.running -= 1
                self._threads.discard(threading.current_thread())
            self._slots.release()

    def _checkout(self) -> Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                self._workers.remove(worker)
        worker = Worker(self.source.function)
        with self._lock:
            self._workers.append(worker)
            self.workers_started += 1
        return worker

    def _checkin(self, worker: Worker) -> None:
        with self._lock:
            if worker.alive and not self._stop.is_set():
                self._idle.append(worker)
            elif worker in self._workers:
                self._workers.remove(worker)

    def _settle(self, messages: list[dict[str, Any]], invocation: Invocation) -> None:
        done = settle(messages, invocation.result if invocation.ok else None, self.source.report_failures)
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
