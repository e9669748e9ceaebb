"""Capacity: how many events a second one organisation can publish and have delivered
within DynamoDB's per-partition limits (1,000 write units and 3,000 read units a second
per partition key value, on the table and on each index), and what a delivered event
costs.

The real code runs in this process on the template's table and queue (moto): N events of a
given size are published (`events.publish`), taken off the queue in batches as the deliver
function's event source takes them, and delivered (`deliver.handle_job`, with a sender that
answers 200: the HTTP is not the subject); an operator lists the first page of events
(`service.list_events`) once every `CAPACITY_LIST_EVERY` events; the overdue sweep runs
once. Every DynamoDB request is charged by `bench.dynamocost` (units per partition key
value, on the table and on each index, by DynamoDB's documented rules); every SQS request
is counted in 64 KiB chunks.

A partition key value that takes W write units and R read units per delivered event
limits the rate to min(1,000 / W, 3,000 / R) events a second; the ceiling for one
organisation is the lowest of these over every partition key value its events touch.
Counted, not timed: moto's speed does not enter the figures.

Also printed: the AWS on-demand price per million delivered events, from the requests
counted and the prices below.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import math
import os
import random
import re
import sys
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from bench.dynamocost import TABLE, Recording, RecordingClient, TableSchema, item_size, table_schemas
from devstack import aws, template

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient

EVENTS = int(os.environ.get("CAPACITY_EVENTS", "100"))
LIST_EVERY = int(os.environ.get("CAPACITY_LIST_EVERY", "100"))  # events per operator list page
DATA_SIZES = (512, 2048)  # bytes of `data`, as compact JSON
PARTITION_WRITE_UNITS = 1000  # per second per partition key value, table and each index
PARTITION_READ_UNITS = 3000
TARGET_RATE = 5000  # events a second of 2 KiB for one organisation
TARGET_PRICE = 8.0  # USD per million delivered events of 2 KiB, every line item counted
TARGET_DATA_BYTES = 2048
# A paced config's run (docs/design.md §19.1): fast enough that its slots are waited for in the
# invocation, never sent back, so the run shows what the pacing itself adds to each delivery.
PACED_RATE = 2000
TABLE_WRITE_QUOTA = 40_000  # on-demand write request units a second per table, by default
SWEEP_AFTER = dt.timedelta(minutes=60)  # the sweep function's default
EVENTS_LANE_QUEUE = "DeliveryQueue"  # the events lane; tests and the slow lane have queues of their own

# Prices: AWS on-demand, us-east-1, USD, as known on 2026-11-28 (see docs/benchmarks.md for
# the sources; this machine cannot reach aws.amazon.com to check them). Free tiers ignored.
PRICES_AS_OF = "2026-12-06"
DYNAMODB_PER_MILLION_WRITE_UNITS = 0.625  # standard table class, since the November 2024 cut
DYNAMODB_PER_MILLION_READ_UNITS = 0.125
SQS_PER_MILLION_REQUESTS = 0.40  # standard queue; each 64 KiB chunk of a request counts once
LAMBDA_PER_MILLION_REQUESTS = 0.20
LAMBDA_ARM_PER_GB_SECOND = 0.0000133334  # arm64, first 7.5 billion GB-s a month
SQS_CHUNK = 64 * 1024
DYNAMODB_STORAGE_PER_GB_MONTH = 0.25  # standard table class
DYNAMODB_PITR_PER_GB_MONTH = 0.20  # continuous backups, on the table's size
DYNAMODB_ITEM_OVERHEAD = 100  # bytes DynamoDB adds to each item, and to each index entry, for storage
STORED_DAYS = 30  # an event and everything of it expire after 30 days
LOGS_INGESTED_PER_GB = 0.50  # CloudWatch Logs, standard class
LOGS_STORED_PER_GB_MONTH = 0.03
TRANSFER_OUT_PER_GB = 0.09  # data transfer out to the internet, first 10 TB a month
GB = 1024**3
# Lambda writes three lines of its own per invocation (START, END, REPORT; with active tracing
# REPORT carries the trace ids): about 330 bytes, by the documented formats.
PLATFORM_LOG_BYTES_PER_INVOCATION = 330
# Fixed monthly costs (whatever the event rate):
ALARM_METRIC_PER_MONTH = 0.10  # each metric a standard alarm evaluates
DASHBOARD_PER_MONTH = 3.00
CUSTOM_METRIC_PER_MONTH = 0.30  # each metric name and set of dimension values, first 10,000
# An SQS event source polls each queue with 5 long polls (20 s) while idle: 5 x 3 a minute.
IDLE_POLLS_PER_QUEUE_MONTH = 5 * 3 * 60 * 24 * 30
SWEEP_RUNS_PER_MONTH = 6 * 24 * 30

# The deliver function's duration is modelled, not measured (moto's speed is not
# DynamoDB's): a batch's jobs run concurrently on their own threads, so a batch lasts about
# one job: the receiver's answer plus the job's storage and queue calls one after another.
RECEIVER_MS = 200  # the receiver of bench/delivery.py
CALL_MS = 5  # one DynamoDB or SQS round trip from Lambda, as bench/delivery.py assumes


@dataclass
class Run:
    """What one run of N events did and cost."""

    data_bytes: int
    events: int
    event_item_bytes: int  # what was published, as stored (its data compressed)
    batch_size: int
    stored_bytes: float = 0.0  # per delivered event: its items and index entries, with DynamoDB's overhead
    log_bytes: Counter[str] = field(default_factory=Counter)  # phase -> bytes of log lines the functions wrote
    invocations: int = 0  # the deliver function's (batches)
    sent_bytes: int = 0  # bytes of the requests posted to receivers
    outcomes: Counter[str] = field(default_factory=Counter)
    recording: Recording = field(default_factory=Recording)
    sqs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (phase, operation) -> billed requests
    lists: int = 0
    organisation: str = ""
    names: dict[str, str] = field(default_factory=dict)  # ids to the labels printed for them

    @property
    def delivered(self) -> int:
        return self.outcomes["delivered"]


class CountingSqs:
    """Wraps an SQS client; counts billed requests (64 KiB chunks) by phase and operation."""

    def __init__(self, client: Any, counts: Counter[tuple[str, str]]) -> None:
        self._client = client
        self.counts = counts
        self.phase = "-"

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            chunks = 1
            if name == "send_message":
                chunks = max(1, math.ceil(len(kwargs["MessageBody"].encode("utf-8")) / SQS_CHUNK))
            self.counts[(self.phase, name)] += chunks
            return attribute(*args, **kwargs)

        return call


class OkSender:
    """Answers every delivery with 200 at once (the receiver is not the subject here), and
    counts the bytes of each request as the sender writes it: request line, headers, body."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._lock = threading.Lock()

    def post(self, url: str, body: bytes, headers: Any) -> Any:
        from urllib.parse import urlsplit

        from webhook_service import USER_AGENT
        from webhook_service.domain.delivery import DeliveryResult

        parts = urlsplit(url)
        sent = {
            "Host": parts.netloc,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "Accept-Encoding": "identity",
            "Content-Length": str(len(body)),
            **headers,
        }
        size = len(f"POST {parts.path} HTTP/1.1\r\n") + sum(len(f"{k}: {v}\r\n") for k, v in sent.items()) + 2
        with self._lock:
            self.run.sent_bytes += size + len(body)
        return DeliveryResult(error=None, status_code=200, duration_ms=1, response_excerpt="thanks")


class LogBytes(io.TextIOBase):
    """A stream that counts what is written to it by phase (log lines and metric lines)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.phase = "-"
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.run.log_bytes[self.phase] += len(text.encode("utf-8"))
        return len(text)


_WORD_TEXT = (
    "backup device iphone ipad photo message contact calendar note voice memo album shared library "
    "export import complete partial pending restored archive account cloud storage session "
    "download upload thumbnail original live burst portrait panorama screenshot"
)
_WORDS = _WORD_TEXT.split()


def sample_data(size: int, seed: int = 7) -> dict[str, Any]:
    """A resource whose compact JSON is exactly `size` bytes, shaped as a platform's session
    resource is (ids, dates, counts, names, a list of files): text of the kind a webhook
    carries, which compresses two to four times, not a run of one letter."""
    rng = random.Random(seed)

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    data: dict[str, Any] = {
        "id": uid(),
        "resource": "session",
        "state": "completed",
        "date_created": "2026-12-06T09:14:03.512904Z",
        "date_completed": "2026-12-06T09:16:47.118230Z",
        "source": {"id": uid(), "type": "icloud", "device": f"iPhone{rng.randint(10, 16)},{rng.randint(1, 4)}"},
        "results": [],
        "notes": "",
    }
    while len(json.dumps(data, separators=(",", ":"))) < size - 160:
        kind = rng.choice(_WORDS)
        data["results"].append(
            {
                "kind": kind,
                "path": f"/{rng.choice(_WORDS)}/{kind}/{rng.randint(1, 9999):04d}.json",
                "bytes": rng.randint(1_000, 90_000_000),
                "items": rng.randint(0, 5000),
                "complete": rng.random() > 0.2,
                "date_modified": f"2026-12-0{rng.randint(1, 6)}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
            }
        )
    while len(json.dumps(data, separators=(",", ":"))) < size:
        data["notes"] += rng.choice(_WORDS) + " "
    data["notes"] = data["notes"][: len(data["notes"]) - (len(json.dumps(data, separators=(",", ":"))) - size)]
    if len(json.dumps(data, separators=(",", ":"))) != size:
        raise ValueError(f"data of {size} bytes cannot be shaped as the sample resource")
    return data


def schemas_by_table(refs: dict[str, str]) -> dict[str, TableSchema]:
    """The template's tables by their physical names in a deployed (local) stack."""
    return {refs[logical_id]: schema for logical_id, schema in table_schemas(template.load_template()).items()}


def events_lane_source() -> template.QueueSource:
    """The deliver function's event source on the events lane (the queue `publish` sends to)."""
    (source,) = [
        s
        for s in template.queue_sources(template.load_template())
        if s.function.logical_id == "DeliverFunction" and s.queue_logical_id == EVENTS_LANE_QUEUE
    ]
    return source


def deliver_batch_size() -> int:
    source = events_lane_source()
    return source.batch_size


def measure(
    dynamodb: Any,
    tables: dict[str, TableSchema],
    table_name: str,
    sqs: Any,
    queue_url: str,
    *,
    events: int,
    data_bytes: int,
    list_every: int,
    batch_size: int,
    rate_limit: int | None = None,
) -> Run:
    """Publish and deliver `events` events of one new organisation, recording every request,
    every byte of log and metric lines the code writes, and every byte it sends."""
    from webhook_service import admin, sweep, wiring
    from webhook_service.auth import Authenticator
    from webhook_service.domain.configs import ConfigState, new_config
    from webhook_service.domain.tenants import KeyState, Principal
    from webhook_service.events import publish
    from webhook_service.jobqueue import JobQueue
    from webhook_service.jobs.deliverer import Deliverer
    from webhook_service.logs import logger
    from webhook_service.service.context import Services
    from webhook_service.service.events import list_events
    from webhook_service.storage.codec import marshal
    from webhook_service.storage.event_items import event_data_item
    from webhook_service.storage.items import config_item
    from webhook_service.storage.store import Store
    from webhook_service.timefmt import utcnow

    # Set up, unrecorded: an organisation, a key whose config is valid.
    plain = Store(table_name, dynamodb)
    organisation = str(admin.create_organisation(plain.organisations, "capacity bench")["id"])
    key = str(admin.create_key(plain.organisations, organisation)[0]["id"])
    config = replace(
        new_config(organisation, "https://hooks.receiver.example/ricloud/events/", utcnow()),
        state=ConfigState.VALID,
        rate_limit=rate_limit,
    )
    dynamodb.put_item(TableName=table_name, Item=marshal(config_item(config)))
    plain.organisations.set_key_config(organisation, key, config.id)

    run = Run(data_bytes=data_bytes, events=events, event_item_bytes=0, batch_size=batch_size)
    run.organisation = organisation
    run.names = {organisation: "<org>", config.id: "<config>", key: "<key>"}
    recorder = RecordingClient(dynamodb, tables)
    run.recording = recorder.recording
    counting_sqs = CountingSqs(sqs, run.sqs)
    logs = LogBytes(run)
    # Both wrappers forward every method by name (__getattr__), which no static type can say:
    # the casts are that claim.
    store = Store(table_name, cast("DynamoDBClient", recorder))
    queue = JobQueue(queue_url, cast("SQSClient", counting_sqs))
    deliverer = Deliverer(store=store, sender=OkSender(run), queue=queue)
    wiring.use_deliverer(deliverer)
    services = Services(store=store, queue=queue, authenticator=Authenticator(store.organisations))
    caller = Principal(key_id=key, organisation=organisation, state=KeyState.ACTIVE)
    data = sample_data(data_bytes)

    def phase(name: str) -> None:
        recorder.phase = counting_sqs.phase = logs.phase = name

    streams = [(handler, handler.stream) for handler in logger.handlers if isinstance(handler, logging.StreamHandler)]
    for handler, _ in streams:
        handler.setStream(logs)  # the log lines, at the level deployed functions log at
    level = logger.log_level
    logger.setLevel("INFO")
    try:
        with contextlib.redirect_stdout(logs):  # the metric lines (EMF), which Powertools prints
            published = 0
            while published < events:
                phase("publish")
                chunk = min(batch_size, events - published)
                for _ in range(chunk):
                    event = publish(organisation, "session", "completed", data, key=key, store=store, queue=queue)
                    published += 1
                    if not run.event_item_bytes:
                        run.event_item_bytes = item_size(marshal(event_data_item(event)))
                _drain(run, phase, counting_sqs, queue_url, expected=chunk)
                while list_every and run.lists < published // list_every:
                    phase("list")
                    list_events(services, caller, {})
                    run.lists += 1
            phase("sweep")
            sweep.sweep(store, queue, utcnow(), SWEEP_AFTER)
    finally:
        logger.setLevel(level)
        for handler, stream in streams:
            handler.setStream(stream)
        wiring.use_deliverer(None)
    run.outcomes.update(delivered_states(plain, organisation))
    run.stored_bytes = stored_bytes(dynamodb, tables[table_name], table_name, organisation) / max(run.delivered, 1)
    return run


def delivered_states(store: Any, organisation: str) -> Counter[str]:
    """The organisation's events by state, read from the table after the run (unrecorded)."""
    from webhook_service.domain.queries import ListQuery

    found: Counter[str] = Counter()
    after: str | None = None
    for _ in range(1000):  # pages of 100: bounded by the run's events
        page = store.lists.events(organisation, ListQuery(limit=100, after_id=after))
        found.update(str(event.state) for event in page.items if not event.is_test)
        if not page.has_more:
            break
        after = page.next_after_id
    return found


def stored_bytes(dynamodb: Any, schema: TableSchema, table_name: str, organisation: str) -> int:
    """What the organisation's events take in storage: each item of an event's partition and
    each index entry of it, with DynamoDB's 100 bytes of overhead each (as DynamoDB bills
    storage)."""
    from bench.dynamocost import index_entry

    total = 0
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "FilterExpression": "begins_with(PK, :p)",
        "ExpressionAttributeValues": {":p": {"S": f"EVENT#{organisation}#"}},
    }
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page.get("Items", []):
            total += item_size(item) + DYNAMODB_ITEM_OVERHEAD
            for index in schema.indexes:
                entry = index_entry(index, schema, item)
                if entry is not None:
                    total += item_size(entry) + DYNAMODB_ITEM_OVERHEAD
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class _Context:
    """What the deliver function's handler reads of Lambda's context."""

    aws_request_id = "capacity"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _drain(run: Run, phase: Any, sqs: CountingSqs, queue_url: str, expected: int) -> None:
    """Take the queue's jobs in batches, as the event source does, and run each batch through
    the deliver function's own handler (its jobs at once, its log and metric lines)."""
    from devstack.poller import sqs_event
    from webhook_service.consumer import handle_batch

    handled = 0
    for _ in range(expected + 5):  # a batch holds at least one job; a few empty receives at most
        phase("event source")
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=run.batch_size).get("Messages", [])
        if not messages:
            if handled >= expected:
                return
            continue
        phase("deliver")
        answer = handle_batch(sqs_event(messages, "arn:aws:sqs:us-east-1:000000000000:events", "us-east-1"), _Context())
        assert not answer["batchItemFailures"], answer
        run.invocations += 1
        handled += len(messages)
        phase("event source")
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
        )
        if handled >= expected:
            return
    raise AssertionError(f"only {handled} of {expected} jobs came off the queue")


# -- what a run means -------------------------------------------------------------------------


PEAK_DEVIATIONS = 3.0  # a shard's busiest second, in standard deviations above its mean


@dataclass(frozen=True)
class PartitionLoad:
    """Units per delivered event on one partition key value, or on a family of them that
    an event's id spreads its writes over: `shards` of them (each event takes these units on
    one), or one per event (`shards` None: each partition takes one event's units, once)."""

    target: str
    partition: str
    write_units: float  # per delivered event
    read_units: float
    shards: int | None = 1

    @property
    def rate(self) -> float:
        """Events a second this partition key value (or each of its family) allows."""
        limits = [
            self._rate(self.write_units, PARTITION_WRITE_UNITS),
            self._rate(self.read_units, PARTITION_READ_UNITS),
        ]
        return min(limits)

    def _rate(self, units: float, limit: int) -> float:
        if not units or self.shards is None:
            return math.inf
        if self.shards == 1:
            return limit / units
        # Events land on shards at random: a shard's count in one second at rate R is about
        # Poisson(R / shards). Its busiest second (mean + PEAK_DEVIATIONS standard deviations)
        # must fit the limit: solve m + z * sqrt(m) = limit / units for m, then R = m * shards.
        root = (-PEAK_DEVIATIONS + math.sqrt(PEAK_DEVIATIONS**2 + 4 * limit / units)) / 2
        return root * root * self.shards

    @property
    def bound_by(self) -> str:
        writes = self._rate(self.write_units, PARTITION_WRITE_UNITS)
        reads = self._rate(self.read_units, PARTITION_READ_UNITS)
        return "writes" if writes <= reads else "reads"

    @property
    def spread(self) -> str:
        if self.shards is None:
            return "one per event"
        return f"{self.shards} shards" if self.shards > 1 else ""


PER_EVENT_PHASES = ("publish", "event source", "deliver", "list")
_SHARD = re.compile(r"^(?P<base>.+#event(?:#[^#]+)?)#(?P<shard>\d{2})$")


def family(target: str, partition: str) -> tuple[str, int | None]:
    """The family a partition key value belongs to, and how many partitions it has: an event's
    index partitions' shards, ByOpen's partitions, the events' and attempts' own partitions."""
    from webhook_service.storage.keys import EVENT_SHARDS, OPEN_SHARDS

    if target == TABLE and partition.split("#", 1)[0] in ("EVENT", "ATTEMPT"):
        kind, organisation, _ = partition.split("#", 2)
        return f"{kind}#{organisation}#<id>", None
    if target == "ByRelated" and "#attempt#event=" in partition:
        return partition.split("#attempt#event=", 1)[0] + "#attempt#event=<id>", None
    if target == "ByOpen" and partition.startswith("open#"):
        return "open#<n>", OPEN_SHARDS
    sharded = _SHARD.match(partition)
    if sharded and target != TABLE:
        return f"{sharded['base']}#<nn>", EVENT_SHARDS
    return partition, 1


def partition_loads(run: Run) -> list[PartitionLoad]:
    """Units per delivered event on each partition key value (a family of them counted as
    one, see `family`), busiest (lowest rate) first. The sweep is left out: it runs on a
    schedule, whatever the event rate."""
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    shards: dict[tuple[str, str], int | None] = {}
    for phase, charge in run.recording.charges:
        if phase in PER_EVENT_PHASES:
            name, count = family(charge.target, charge.partition)
            totals[(charge.target, name)][0 if charge.kind == "write" else 1] += charge.units
            shards[(charge.target, name)] = count
    loads = [
        PartitionLoad(target, partition, w / run.delivered, r / run.delivered, shards[(target, partition)])
        for (target, partition), (w, r) in totals.items()
    ]
    return sorted(loads, key=lambda p: (p.rate, -p.write_units, p.target, p.partition))


def ceiling(run: Run) -> tuple[float, PartitionLoad]:
    loads = partition_loads(run)
    return loads[0].rate, loads[0]


@dataclass(frozen=True)
class PhaseCost:
    requests: Counter[str]  # DynamoDB operation -> requests per delivered event
    write_units: float
    read_units: float


def phase_costs(run: Run) -> dict[str, PhaseCost]:
    costs: dict[str, PhaseCost] = {}
    n = run.delivered
    for phase in (*PER_EVENT_PHASES, "sweep"):
        per = 1 if phase == "sweep" else n  # the sweep is per run, the rest per delivered event
        requests: Counter[str] = Counter(
            {op: count / per for (p, op), count in run.recording.requests.items() if p == phase}
        )
        units = [c for p, c in run.recording.charges if p == phase]
        costs[phase] = PhaseCost(
            requests=requests,
            write_units=sum(c.units for c in units if c.kind == "write") / per,
            read_units=sum(c.units for c in units if c.kind == "read") / per,
        )
    return costs


def per_event(run: Run) -> tuple[float, float, float, float]:
    """DynamoDB requests, write units, read units and SQS requests per delivered event."""
    costs = phase_costs(run)
    requests = sum(sum(costs[p].requests.values()) for p in PER_EVENT_PHASES)
    writes = sum(costs[p].write_units for p in PER_EVENT_PHASES)
    reads = sum(costs[p].read_units for p in PER_EVENT_PHASES)
    sqs = sum(count for (phase, _), count in run.sqs.items() if phase in PER_EVENT_PHASES) / run.delivered
    return requests, writes, reads, sqs


def deliver_memory_mb() -> int:
    loaded = template.load_template()
    memory = loaded.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
    return int(loaded["Resources"]["DeliverFunction"]["Properties"].get("MemorySize", memory))


@dataclass(frozen=True)
class Price:
    """USD per million delivered events, by line item."""

    dynamodb_writes: float
    dynamodb_reads: float
    dynamodb_storage: float  # the event's items and index entries, kept 30 days, with point-in-time recovery
    sqs: float
    lambda_requests: float
    lambda_duration: float
    logs: float  # CloudWatch Logs: ingesting (and keeping) the lines the functions and the publisher write
    transfer_out: float  # the requests posted to receivers
    job_ms: float  # the modelled duration of one deliver job (a batch lasts about one job)
    log_bytes: float  # per delivered event
    sent_bytes: float  # per delivered event

    @property
    def items(self) -> dict[str, float]:
        return {
            "DynamoDB writes": self.dynamodb_writes,
            "DynamoDB reads": self.dynamodb_reads,
            "DynamoDB storage (30 days, PITR)": self.dynamodb_storage,
            "SQS": self.sqs,
            "Lambda requests": self.lambda_requests,
            "Lambda duration": self.lambda_duration,
            "CloudWatch Logs": self.logs,
            "data transfer out": self.transfer_out,
        }

    @property
    def total(self) -> float:
        return sum(self.items.values())


def log_retention_days() -> int:
    """The functions' log retention, as the template's default sets it."""
    return int(template.load_template()["Parameters"]["LogRetentionDays"]["Default"])


def price_per_million(run: Run, memory_mb: int) -> Price:
    """USD per million delivered events. The publish path runs in the publisher's own
    process (a layer function, no API Gateway): its requests, and its log and metric lines
    (on the publisher's bill, but caused by the event), are counted."""
    _, writes, reads, sqs = per_event(run)
    costs = phase_costs(run)
    job_calls = (
        sum(costs["deliver"].requests.values())
        + sum(count for (phase, _), count in run.sqs.items() if phase == "deliver") / run.delivered
    )
    job_ms = RECEIVER_MS + job_calls * CALL_MS
    gb_seconds = memory_mb / 1024 * job_ms / 1000 / run.batch_size
    log_bytes = (
        sum(n for phase, n in run.log_bytes.items() if phase in PER_EVENT_PHASES)
        + run.invocations * PLATFORM_LOG_BYTES_PER_INVOCATION
    ) / run.delivered
    kept_months = log_retention_days() / 30
    sent = run.sent_bytes / run.delivered
    return Price(
        dynamodb_writes=writes * DYNAMODB_PER_MILLION_WRITE_UNITS,
        dynamodb_reads=reads * DYNAMODB_PER_MILLION_READ_UNITS,
        dynamodb_storage=run.stored_bytes
        * 1_000_000
        / GB
        * STORED_DAYS
        / 30
        * (DYNAMODB_STORAGE_PER_GB_MONTH + DYNAMODB_PITR_PER_GB_MONTH),
        sqs=sqs * SQS_PER_MILLION_REQUESTS,
        lambda_requests=LAMBDA_PER_MILLION_REQUESTS * run.invocations / run.delivered,
        lambda_duration=gb_seconds * 1_000_000 * LAMBDA_ARM_PER_GB_SECOND,
        logs=log_bytes * 1_000_000 / GB * (LOGS_INGESTED_PER_GB + LOGS_STORED_PER_GB_MONTH * kept_months),
        transfer_out=sent * 1_000_000 / GB * TRANSFER_OUT_PER_GB,
        job_ms=job_ms,
        log_bytes=log_bytes,
        sent_bytes=sent,
    )


def fixed_monthly() -> list[tuple[str, float]]:
    """The costs that come with the stack whatever its traffic, from the template: alarms,
    the dashboard, the custom metrics the code emits, the event sources' idle polling, the
    sweep's runs."""
    loaded = template.load_template()
    resources = loaded["Resources"].values()
    alarm_metrics = 0
    for resource in resources:
        if resource.get("Type") == "AWS::CloudWatch::Alarm":
            metrics = resource["Properties"].get("Metrics")
            alarm_metrics += sum(1 for m in metrics if "MetricStat" in m) if metrics else 1
    dashboards = sum(1 for r in resources if r.get("Type") == "AWS::CloudWatch::Dashboard")
    queues = len(template.queue_sources(loaded))
    custom = custom_metric_count()
    return [
        (f"alarms ({alarm_metrics} metrics evaluated)", alarm_metrics * ALARM_METRIC_PER_MONTH),
        (f"dashboards ({dashboards})", dashboards * DASHBOARD_PER_MONTH),
        (f"custom metrics ({custom} names and dimension values)", custom * CUSTOM_METRIC_PER_MONTH),
        (
            f"idle polling of {queues} queues ({IDLE_POLLS_PER_QUEUE_MONTH:,} receives each)",
            queues * IDLE_POLLS_PER_QUEUE_MONTH * SQS_PER_MILLION_REQUESTS / 1_000_000,
        ),
        (f"sweep runs ({SWEEP_RUNS_PER_MONTH:,})", SWEEP_RUNS_PER_MONTH * LAMBDA_PER_MILLION_REQUESTS / 1_000_000),
    ]


def custom_metric_count() -> int:
    """The metrics the code can emit: each name with each value its dimensions take."""
    from webhook_service import telemetry

    plain = [
        telemetry.CONFIGS_CREATED,
        telemetry.TESTS_QUEUED,
        telemetry.QUEUE_SEND_FAILURES,
        telemetry.EVENTS_PUBLISHED,
        telemetry.RESENDS,
        telemetry.SECRET_ROTATIONS,
        telemetry.DELIVERY_DURATION,
        telemetry.EVENTS_FAILED,
    ]
    deliveries = len(DELIVERY_OUTCOMES)  # (kind, outcome) pairs
    overdue = 4  # (task or event) x (requeued or failed)
    return len(plain) + deliveries + overdue


DELIVERY_OUTCOMES = (
    ("test", "succeeded"),
    ("test", "failed"),
    ("test", "superseded"),
    ("test", "stale"),
    ("test", "duplicate"),
    ("test", "slow-lane"),
    ("event", "delivered"),
    ("event", "retrying"),
    ("event", "failed"),
    ("event", "unconfigured"),
    ("event", "waiting"),
    ("event", "duplicate"),
    ("event", "slow-lane"),
    ("event", "missing"),
)


def label(run: Run, partition: str) -> str:
    for value, name in run.names.items():
        partition = partition.replace(value, name)
    if run.organisation not in partition and "<org>" not in partition:
        partition += "  (every organisation's)"
    return partition


def report(run: Run, top: int = 8) -> list[str]:
    requests, writes, reads, sqs = per_event(run)
    rate, hottest = ceiling(run)
    lines = [
        f"{run.data_bytes:,}-byte data (stored event item {run.event_item_bytes:,} bytes): {run.events} events, "
        f"{run.delivered} delivered; list pages: {run.lists} (1 per {LIST_EVERY} events)",
        f"  per delivered event: {requests:.2f} DynamoDB requests, {writes:.2f} write units, "
        f"{reads:.2f} read units; {sqs:.2f} SQS requests",
    ]
    for phase, cost in phase_costs(run).items():
        per = 1 if phase == "sweep" else run.delivered
        unit = "a run" if phase == "sweep" else "per event"
        ops = [f"{op} {n:.2f}" for op, n in sorted(cost.requests.items())]
        ops += [f"sqs {op} {n / per:.2f}" for (p, op), n in sorted(run.sqs.items()) if p == phase]
        lines.append(
            f"    {phase:13} {sum(cost.requests.values()):6.2f} requests {unit:9} "
            f"{cost.write_units:6.2f} WCU {cost.read_units:6.2f} RCU  {', '.join(ops)}"
        )
    lines.append(
        "  busiest partition key values (units per delivered event -> events/s it allows; a family spread "
        f"over shards by event id at its busiest second, {PEAK_DEVIATIONS:g} standard deviations over its mean):"
    )
    for load in partition_loads(run)[:top]:
        allows = "unbounded" if math.isinf(load.rate) else f"{load.rate:,.0f}/s ({load.bound_by})"
        lines.append(
            f"    {load.target:9} {label(run, load.partition):46} {load.spread:13} {load.write_units:6.2f} WCU "
            f"{load.read_units:6.2f} RCU -> {allows}"
        )
    lines.append(
        f"  ceiling for one organisation: {rate:,.0f} events/s, set by {hottest.bound_by} on "
        f"{hottest.target} {label(run, hottest.partition)}"
    )
    lines.append(routing_note())
    by_target: dict[str, float] = defaultdict(float)
    for load in partition_loads(run):
        by_target[load.target] += load.write_units
    spread = ", ".join(f"{target} {units * TARGET_RATE:,.0f}" for target, units in sorted(by_target.items()))
    lines.append(
        f"  write units a second at {TARGET_RATE:,} events/s of this size: {spread} (on-demand tables have a "
        f"default quota of {TABLE_WRITE_QUOTA:,} a second per table, raised on request)"
    )
    return lines


ROUTING_ITEMS = 3  # the organisation, the key and the config: read for publishing and delivering


def routing_note() -> str:
    """The organisation's partition's reads at scale: each process keeps the routing items
    ROUTING_CACHE_SECONDS, so they are read once per process per window, whatever the rate
    (this run's one process read them about once)."""
    from webhook_service.storage.routing import ROUTING_CACHE_SECONDS

    source = events_lane_source()
    processes = 2 * (source.max_concurrency or 1000)  # the deliver function's, and as many publishers
    per_second = processes * ROUTING_ITEMS / ROUTING_CACHE_SECONDS
    return (
        f"  routing reads on ORG#<org> at scale: {processes} processes (the deliver function's "
        f"{source.max_concurrency} instances and as many publishers) x {ROUTING_ITEMS} items every "
        f"{ROUTING_CACHE_SECONDS:g} s = {per_second:,.0f} RCU a second, whatever the rate "
        f"(limit {PARTITION_READ_UNITS:,})"
    )


def concurrency_note(run: Run, price: Price) -> str:
    source = events_lane_source()
    if not source.max_concurrency:
        return "  deliver function: no MaximumConcurrency on its event source"
    in_flight = source.max_concurrency * source.batch_size
    return (
        f"  deliver function: MaximumConcurrency {source.max_concurrency} x batches of {source.batch_size} = "
        f"{in_flight} jobs in flight; at the modelled {price.job_ms:.0f} ms a job that is "
        f"{in_flight / (price.job_ms / 1000):,.0f} events/s, whatever DynamoDB allows"
    )


def price_lines(run: Run, price: Price, memory_mb: int) -> list[str]:
    _, writes, reads, sqs = per_event(run)
    detail = {
        "DynamoDB writes": f"{writes:.2f} WRU x ${DYNAMODB_PER_MILLION_WRITE_UNITS}/M",
        "DynamoDB reads": f"{reads:.2f} RRU x ${DYNAMODB_PER_MILLION_READ_UNITS}/M",
        "DynamoDB storage (30 days, PITR)": f"{run.stored_bytes:,.0f} bytes x {STORED_DAYS} days x "
        f"${DYNAMODB_STORAGE_PER_GB_MONTH} + ${DYNAMODB_PITR_PER_GB_MONTH} per GB-month",
        "SQS": f"{sqs:.2f} requests x ${SQS_PER_MILLION_REQUESTS}/M",
        "Lambda requests": f"{run.invocations / run.delivered:.2f} invocations x ${LAMBDA_PER_MILLION_REQUESTS}/M",
        "Lambda duration": f"{memory_mb} MB arm64 x {price.job_ms:.0f} ms / {run.batch_size} a job "
        f"(modelled: receiver {RECEIVER_MS} ms + {CALL_MS} ms a call)",
        "CloudWatch Logs": f"{price.log_bytes:,.0f} bytes (measured, with Lambda's "
        f"{PLATFORM_LOG_BYTES_PER_INVOCATION} a batch) x ${LOGS_INGESTED_PER_GB}/GB, kept {log_retention_days()} days",
        "data transfer out": f"{price.sent_bytes:,.0f} bytes a request (measured) x ${TRANSFER_OUT_PER_GB}/GB",
    }
    lines = [
        f"  price per million delivered events (us-east-1 on-demand, prices as of {PRICES_AS_OF}): ${price.total:,.2f}"
    ]
    lines += [f"    {name:34} ${cost:7.2f}   {detail[name]}" for name, cost in price.items.items()]
    return lines


def paced_line(plain: Run, paced: Run, memory_mb: int) -> str:
    """What a config's `rate_limit` adds to a delivered event of the same size."""
    _, plain_writes, _, plain_sqs = per_event(plain)
    _, paced_writes, _, paced_sqs = per_event(paced)
    plain_price, paced_price = price_per_million(plain, memory_mb), price_per_million(paced, memory_mb)
    return (
        f"paced (a config with rate_limit {PACED_RATE:,}, {paced.data_bytes:,}-byte events, "
        f"{paced.delivered} of {paced.events} delivered): {paced_writes:.2f} WRU per delivered event "
        f"({paced_writes - plain_writes:+.2f}), {paced_sqs:.2f} SQS requests ({paced_sqs - plain_sqs:+.2f}), "
        f"${paced_price.total:,.2f} per million ({paced_price.total - plain_price.total:+.2f})"
    )


def fixed_lines() -> list[str]:
    items = fixed_monthly()
    lines = [f"fixed monthly costs, whatever the traffic: ${sum(cost for _, cost in items):,.2f} a month"]
    lines += [f"    {name:60} ${cost:7.2f}" for name, cost in items]
    return lines


def main() -> int:
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"  # its lines are logs the bill counts: measured
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "b", "AWS_SECRET_ACCESS_KEY": "b"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import boto3
    from moto import mock_aws

    memory_mb = deliver_memory_mb()
    batch_size = deliver_batch_size()
    print(
        f"capacity: one organisation's events through publish, the queue and delivery (moto), "
        f"{EVENTS} events a size; limits {PARTITION_WRITE_UNITS:,} WCU and {PARTITION_READ_UNITS:,} RCU "
        "a second per partition key value"
    )
    met = priced = True
    with mock_aws():
        stack = aws.deploy(template.load_template(), {"Stage": "dev"})
        tables = schemas_by_table(stack.refs)
        dynamodb = boto3.client("dynamodb")
        sqs = boto3.client("sqs")
        measured = partial(
            measure,
            dynamodb,
            tables,
            stack.refs["Table"],
            sqs,
            stack.refs["DeliveryQueue"],
            events=EVENTS,
            list_every=LIST_EVERY,
            batch_size=batch_size,
        )
        for data_bytes in DATA_SIZES:
            run = measured(data_bytes=data_bytes)
            if run.delivered != run.events:
                print(f"  only {run.delivered} of {run.events} delivered: {dict(run.outcomes)}")
                return 1
            price = price_per_million(run, memory_mb)
            print()
            print("\n".join(report(run)))
            print("\n".join(price_lines(run, price, memory_mb)))
            print(concurrency_note(run, price))
            if data_bytes == TARGET_DATA_BYTES:
                met = ceiling(run)[0] >= TARGET_RATE
                priced = price.total <= TARGET_PRICE
        paced = measured(data_bytes=TARGET_DATA_BYTES, rate_limit=PACED_RATE)
        print()
        print(paced_line(run, paced, memory_mb))
    print()
    print("\n".join(fixed_lines()))
    print()
    print(f"target (at least {TARGET_RATE:,} events/s of {TARGET_DATA_BYTES:,} bytes): {'met' if met else 'NOT met'}")
    print(
        f"target (at most ${TARGET_PRICE:g} per million delivered events of {TARGET_DATA_BYTES:,} bytes): "
        f"{'met' if priced else 'NOT met'}"
    )
    print(f"  ({TABLE} is the base table; the other targets are its global secondary indexes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
