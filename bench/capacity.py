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
import math
import os
import re
import sys
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
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
TARGET_RATE = 2000  # events a second of 2 KiB for one organisation
TARGET_DATA_BYTES = 2048
TABLE_WRITE_QUOTA = 40_000  # on-demand write request units a second per table, by default
SWEEP_AFTER = dt.timedelta(minutes=60)  # the sweep function's default
EVENTS_LANE_QUEUE = "DeliveryQueue"  # the events lane; tests and the slow lane have queues of their own

# Prices: AWS on-demand, us-east-1, USD, as known on 2026-11-28 (see docs/benchmarks.md for
# the sources; this machine cannot reach aws.amazon.com to check them). Free tiers ignored.
PRICES_AS_OF = "2026-11-28"
DYNAMODB_PER_MILLION_WRITE_UNITS = 0.625  # standard table class, since the November 2024 cut
DYNAMODB_PER_MILLION_READ_UNITS = 0.125
SQS_PER_MILLION_REQUESTS = 0.40  # standard queue; each 64 KiB chunk of a request counts once
LAMBDA_PER_MILLION_REQUESTS = 0.20
LAMBDA_ARM_PER_GB_SECOND = 0.0000133334  # arm64, first 7.5 billion GB-s a month
SQS_CHUNK = 64 * 1024

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
    event_item_bytes: int
    batch_size: int
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
    """Answers every delivery with 200 at once: the receiver is not the subject here."""

    def post(self, url: str, body: bytes, headers: Any) -> Any:
        from webhook_service.domain.delivery import DeliveryResult

        return DeliveryResult(error=None, status_code=200, duration_ms=1, response_excerpt="")


def sample_data(size: int) -> dict[str, Any]:
    """A resource whose compact JSON is exactly `size` bytes."""
    data: dict[str, Any] = {"id": str(uuid.uuid4()), "resource": "session", "state": "completed", "padding": ""}
    padding = size - len(json.dumps(data, separators=(",", ":")))
    if padding < 0:
        raise ValueError(f"data of {size} bytes is too small for the sample resource")
    data["padding"] = "x" * padding
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
) -> Run:
    """Publish and deliver `events` events of one new organisation, recording every request."""
    from webhook_service import admin, sweep
    from webhook_service.auth import Authenticator
    from webhook_service.domain.configs import ConfigState, new_config
    from webhook_service.domain.tenants import KeyState, Principal
    from webhook_service.events import publish
    from webhook_service.jobqueue import JobQueue
    from webhook_service.jobs.deliverer import Deliverer
    from webhook_service.jobs.dispatch import handle_job
    from webhook_service.service.context import Services
    from webhook_service.service.events import list_events
    from webhook_service.storage.codec import marshal
    from webhook_service.storage.items import config_item, event_item
    from webhook_service.storage.store import Store
    from webhook_service.timefmt import utcnow

    # Set up, unrecorded: an organisation, a key whose config is valid.
    plain = Store(table_name, dynamodb)
    organisation = str(admin.create_organisation(plain.organisations, "capacity bench")["id"])
    key = str(admin.create_key(plain.organisations, organisation)[0]["id"])
    config = replace(new_config(organisation, "https://receiver.example/hooks", utcnow()), state=ConfigState.VALID)
    dynamodb.put_item(TableName=table_name, Item=marshal(config_item(config)))
    plain.organisations.set_key_config(organisation, key, config.id)

    run = Run(data_bytes=data_bytes, events=events, event_item_bytes=0, batch_size=batch_size)
    run.organisation = organisation
    run.names = {organisation: "<org>", config.id: "<config>", key: "<key>"}
    recorder = RecordingClient(dynamodb, tables)
    run.recording = recorder.recording
    counting_sqs = CountingSqs(sqs, run.sqs)
    # Both wrappers forward every method by name (__getattr__), which no static type can say:
    # the casts are that claim.
    store = Store(table_name, cast("DynamoDBClient", recorder))
    queue = JobQueue(queue_url, cast("SQSClient", counting_sqs))
    deliverer = Deliverer(store=store, sender=OkSender(), queue=queue)
    services = Services(store=store, queue=queue, authenticator=Authenticator(store.organisations))
    caller = Principal(key_id=key, organisation=organisation, state=KeyState.ACTIVE)
    data = sample_data(data_bytes)

    published = 0
    while published < events:
        recorder.phase = counting_sqs.phase = "publish"
        chunk = min(batch_size, events - published)
        for _ in range(chunk):
            event = publish(organisation, "session", "completed", data, key=key, store=store, queue=queue)
            published += 1
            if not run.event_item_bytes:
                run.event_item_bytes = item_size(marshal(event_item(event)))
        _drain(run, recorder, counting_sqs, queue_url, deliverer, handle_job, expected=chunk)
        while list_every and run.lists < published // list_every:
            recorder.phase = counting_sqs.phase = "list"
            list_events(services, caller, {})
            run.lists += 1
    recorder.phase = counting_sqs.phase = "sweep"
    sweep.sweep(store, queue, utcnow(), SWEEP_AFTER)
    return run


def _drain(
    run: Run,
    recorder: RecordingClient,
    sqs: CountingSqs,
    queue_url: str,
    deliverer: Any,
    handle_job: Any,
    expected: int,
) -> None:
    """Take the queue's jobs in batches, as the event source does, and run each one."""
    handled = 0
    for _ in range(expected + 5):  # a batch holds at least one job; a few empty receives at most
        recorder.phase = sqs.phase = "event source"
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=run.batch_size).get("Messages", [])
        if not messages:
            if handled >= expected:
                return
            continue
        recorder.phase = sqs.phase = "deliver"
        for message in messages:
            run.outcomes[handle_job(deliverer, message["Body"]).name] += 1
            handled += 1
        recorder.phase = sqs.phase = "event source"
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
    dynamodb_writes: float
    dynamodb_reads: float
    sqs: float
    lambda_requests: float
    lambda_duration: float
    job_ms: float  # the modelled duration of one deliver job (a batch lasts about one job)

    @property
    def total(self) -> float:
        return self.dynamodb_writes + self.dynamodb_reads + self.sqs + self.lambda_requests + self.lambda_duration


def price_per_million(run: Run, memory_mb: int) -> Price:
    """USD per million delivered events. The publish path runs in the publisher's own
    process (a layer function, no API Gateway), so only its requests are counted."""
    _, writes, reads, sqs = per_event(run)
    costs = phase_costs(run)
    job_calls = (
        sum(costs["deliver"].requests.values())
        + sum(count for (phase, _), count in run.sqs.items() if phase == "deliver") / run.delivered
    )
    job_ms = RECEIVER_MS + job_calls * CALL_MS
    gb_seconds = memory_mb / 1024 * job_ms / 1000 / run.batch_size
    return Price(
        dynamodb_writes=writes * DYNAMODB_PER_MILLION_WRITE_UNITS,
        dynamodb_reads=reads * DYNAMODB_PER_MILLION_READ_UNITS,
        sqs=sqs * SQS_PER_MILLION_REQUESTS,
        lambda_requests=LAMBDA_PER_MILLION_REQUESTS / run.batch_size,
        lambda_duration=gb_seconds * 1_000_000 * LAMBDA_ARM_PER_GB_SECOND,
        job_ms=job_ms,
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
    return [
        f"  price per million delivered events (us-east-1 on-demand, prices as of {PRICES_AS_OF}): ${price.total:,.2f}",
        f"    DynamoDB writes {writes:.2f} WRU x ${DYNAMODB_PER_MILLION_WRITE_UNITS}/M = "
        f"${price.dynamodb_writes:,.2f}; "
        f"reads {reads:.2f} RRU x ${DYNAMODB_PER_MILLION_READ_UNITS}/M = ${price.dynamodb_reads:,.2f}",
        f"    SQS {sqs:.2f} requests x ${SQS_PER_MILLION_REQUESTS}/M = ${price.sqs:,.2f}",
        f"    Lambda {1 / run.batch_size:.2f} invocations x ${LAMBDA_PER_MILLION_REQUESTS}/M = "
        f"${price.lambda_requests:,.2f}; {memory_mb} MB arm64 x {price.job_ms:.0f} ms / {run.batch_size} a job "
        f"(modelled: receiver {RECEIVER_MS} ms + {CALL_MS} ms a call) = ${price.lambda_duration:,.2f}",
    ]


def main() -> int:
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # read when the metrics module is imported
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "b", "AWS_SECRET_ACCESS_KEY": "b"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import boto3
    from moto import mock_aws

    from webhook_service.logs import logger

    logger.setLevel("ERROR")
    memory_mb = deliver_memory_mb()
    batch_size = deliver_batch_size()
    print(
        f"capacity: one organisation's events through publish, the queue and delivery (moto), "
        f"{EVENTS} events a size; limits {PARTITION_WRITE_UNITS:,} WCU and {PARTITION_READ_UNITS:,} RCU "
        "a second per partition key value"
    )
    met = True
    with mock_aws():
        stack = aws.deploy(template.load_template(), {"Stage": "dev"})
        tables = schemas_by_table(stack.refs)
        dynamodb = boto3.client("dynamodb")
        sqs = boto3.client("sqs")
        for data_bytes in DATA_SIZES:
            with contextlib.redirect_stdout(io.StringIO()):  # publish writes an EMF metric line per event
                run = measure(
                    dynamodb,
                    tables,
                    stack.refs["Table"],
                    sqs,
                    stack.refs["DeliveryQueue"],
                    events=EVENTS,
                    data_bytes=data_bytes,
                    list_every=LIST_EVERY,
                    batch_size=batch_size,
                )
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
    print()
    print(f"target (at least {TARGET_RATE:,} events/s of {TARGET_DATA_BYTES:,} bytes): {'met' if met else 'NOT met'}")
    print(f"  ({TABLE} is the base table; the other targets are its global secondary indexes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
