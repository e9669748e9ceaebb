"""The overdue sweep against a full backlog: 6,400 overdue test tasks (100 in each of the 64
ByOpen partitions, the most one run reads; an event's lost job is found on the dead-letter
queue instead, and only tasks are in ByOpen), on the local stack's moto
(`devstack.aws.EmbeddedMoto`, with its patches, over HTTP), swept by the sweep function's own
handler with Lambda's budget (the template's Timeout) counting down in real time, run after
run until every item has its job again. Prints each run's time, what it queued and the
requests it made, and checks that every item was swept exactly once (its `sweeps` is 1 and
it is still open) and that the queues hold exactly one job per item (nothing swept twice,
nothing lost).

moto answers DynamoDB one request at a time and is slower than DynamoDB per request, so the
times are moto's, not Lambda's: what carries over is whether a run ends before its budget,
and how many requests it makes (printed too).

    .venv/bin/python -m bench.sweep    (SWEEP_BENCH_PER_SHARD=100, SWEEP_BENCH_RUNS=5)
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

from devstack import aws, template

ROOT = Path(__file__).resolve().parent.parent
PER_SHARD = int(os.environ.get("SWEEP_BENCH_PER_SHARD", "100"))
RUNS = int(os.environ.get("SWEEP_BENCH_RUNS", "5"))


class LambdaContext:
    """What the sweep reads of Lambda's context: the time left, counting down for real."""

    aws_request_id = "bench-sweep"

    def __init__(self, timeout_seconds: float) -> None:
        self.deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class CountingClient:
    """A boto3 client that counts its calls by operation name."""

    def __init__(self, client: Any, counts: Counter[str]) -> None:
        self._client = client
        self._counts = counts

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._counts[name] += 1
            return attribute(*args, **kwargs)

        return call


def load_sweep_function() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sweep_app", ROOT / "functions" / "sweep" / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed(client: Any, table: str, now: dt.datetime) -> set[str]:
    """PER_SHARD overdue items in every ByOpen partition: test tasks created two hours ago
    whose jobs were lost. Returns their ids."""
    from webhook_service.domain.configs import new_config, new_test_task
    from webhook_service.storage.codec import marshal
    from webhook_service.storage.items import task_item
    from webhook_service.storage.keys import OPEN_SHARDS, open_shard

    created = now - dt.timedelta(hours=2)
    config = new_config("bench-organisation", "https://receiver.example/hooks/", created)
    filled: Counter[int] = Counter()
    items: list[dict[str, Any]] = []
    while len(items) < PER_SHARD * OPEN_SHARDS:
        task = new_test_task(config, "bench-key", created)
        work_id, item = task.id, task_item(task)
        shard = open_shard(work_id)
        if filled[shard] < PER_SHARD:
            filled[shard] += 1
            items.append(item)
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": marshal(item)}} for item in items[start : start + 25]]
        client.batch_write_item(RequestItems={table: batch})
    return {str(item["id"]) for item in items}


def queued(sqs: Any, *queue_urls: str) -> int:
    """Messages waiting in the queues (nothing consumes them here, so all the sweep sent)."""
    total = 0
    for url in queue_urls:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        total += int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    return total


def sweeps_of(client: Any, table: str, ids: set[str]) -> Counter[str]:
    """How the seeded items stand: `swept once` (sweeps = 1, still open), `swept N times`, `ended`,
    `not swept`. Read with a scan: moto answers it from memory."""
    from webhook_service.storage.codec import unmarshal

    found: Counter[str] = Counter()
    for page in client.get_paginator("scan").paginate(TableName=table):
        for raw in page["Items"]:
            item = unmarshal(raw)
            if str(item.get("id")) not in ids:
                continue
            sweeps = int(item.get("sweeps", 0))
            if item.get("state") in ("failed", "succeeded", "delivered"):
                found["ended"] += 1
            else:
                found["not swept" if sweeps == 0 else "swept once" if sweeps == 1 else f"swept {sweeps} times"] += 1
    return found


def main() -> int:
    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    moto = aws.EmbeddedMoto()
    moto.start()
    aws.use_local_credentials(moto.endpoint)
    tpl = template.load_template()
    stack = aws.deploy(tpl, {"Stage": "dev"}, stack_name="bench-sweep")
    sweep_spec = next(f for f in template.functions(tpl) if f.logical_id == "SweepFunction")
    os.environ.update(
        {
            "TABLE_NAME": stack.refs["Table"],
            "QUEUE_URL": stack.refs["DeliveryQueue"],
            "TEST_QUEUE_URL": stack.refs["TestQueue"],
            "SLOW_QUEUE_URL": stack.refs["SlowQueue"],
            "SWEEP_AFTER_MINUTES": "60",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    from webhook_service import wiring

    counts: Counter[str] = Counter()
    function = load_sweep_function()
    services = wiring.services()
    services.store.table._client = CountingClient(services.store.table.client, counts)  # type: ignore[assignment]
    for lane in (services.queue, services.test_queue):
        lane._client = CountingClient(lane.client, counts)  # type: ignore[union-attr]

    sqs = boto3.client("sqs")
    dynamodb = boto3.client("dynamodb")
    ids = seed(dynamodb, stack.refs["Table"], dt.datetime.now(dt.UTC))
    print(
        f"sweep bench: {len(ids)} overdue items ({PER_SHARD} in each ByOpen partition), "
        f"budget {sweep_spec.timeout_seconds:.0f} s a run (the template's Timeout), moto over HTTP"
    )
    lanes = (stack.refs["DeliveryQueue"], stack.refs["TestQueue"])
    total_time = 0.0
    for run in range(1, RUNS + 1):
        counts.clear()
        before = queued(sqs, *lanes)
        context = LambdaContext(sweep_spec.timeout_seconds)
        started = time.monotonic()
        summary = function.handler({"source": "aws.events"}, context)
        took = time.monotonic() - started
        total_time += took
        sent = queued(sqs, *lanes) - before
        over = " (past the budget: Lambda would have stopped it midway)" if took > sweep_spec.timeout_seconds else ""
        requests = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        print(f"  run {run}: {took:6.1f} s{over}; jobs queued {sent}; {summary}; requests: {requests}", flush=True)
        if queued(sqs, *lanes) >= len(ids):
            break
    standing = sweeps_of(dynamodb, stack.refs["Table"], ids)
    total = queued(sqs, *lanes)
    print(f"  {run} runs, {total_time:.1f} s in all; jobs queued {total} for {len(ids)} items; items: {dict(standing)}")
    moto.stop()
    return 0 if total == len(ids) and standing == Counter({"swept once": len(ids)}) else 1


if __name__ == "__main__":
    sys.exit(main())
