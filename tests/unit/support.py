"""Fakes and helpers shared by the unit tests: a recording queue, a stepping clock, a
client that records its calls, API Gateway events, item counts, a Lambda context, and
the EMF metrics read back from what a function printed."""

from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from webhook_service.domain.delivery import DeliveryResult
from webhook_service.domain.tenants import Principal
from webhook_service.errors import DependencyError
from webhook_service.jobs.deliverer import Deliverer
from webhook_service.service import tasks as task_cases
from webhook_service.service.context import Services
from webhook_service.storage.keys import org_pk
from webhook_service.storage.store import Store
from webhook_service.wiring import ProcessServices

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

ROOT = Path(__file__).resolve().parents[2]
BASE_TIME = dt.datetime(2026, 11, 27, 18, 22, 49, 123456, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Backing:
    """The deployed table and queue, and the clients that reach them."""

    table_name: str
    queue_url: str
    dynamodb: Any
    sqs: Any
    test_queue_url: str = ""
    slow_queue_url: str = ""


class FakeQueue:
    """Records the jobs it is given, or refuses them like an unavailable SQS."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.jobs: list[dict[str, Any]] = []
        self.sent: list[tuple[dict[str, Any], int]] = []  # every job sent, with its delay (seconds)

    def send(self, job: dict[str, Any], delay_seconds: int = 0) -> str:
        if self.fail:
            raise DependencyError("sqs send failed: EndpointConnectionError")
        self.jobs.append(job)
        self.sent.append((job, delay_seconds))
        return str(uuid.uuid4())


class FakeDeadLetters:
    """A dead-letter queue of the messages it is given (receipt, job); receive hands each out
    once until it is added again, delete removes it."""

    def __init__(self, messages: list[tuple[str, dict[str, Any] | None]]) -> None:
        self.messages = list(messages)
        self._handed: set[str] = set()

    def add(self, message: tuple[str, dict[str, Any] | None]) -> None:
        self.messages.append(message)
        self._handed.discard(message[0])

    def receive(self, most: int) -> list[tuple[str, dict[str, Any] | None]]:
        fresh = [m for m in self.messages if m[0] not in self._handed][:most]
        self._handed.update(receipt for receipt, _ in fresh)
        return fresh

    def delete(self, receipt: str) -> None:
        self.messages = [m for m in self.messages if m[0] != receipt]

    def left(self) -> list[dict[str, Any] | None]:
        return [job for _, job in self.messages]


class FakeSender:
    """Records what it is asked to send and answers with a fixed result, after `before`:
    `status` after `duration_ms`, or no answer at all (a timeout) when `status` is None."""

    def __init__(
        self, status: int | None = 200, before: Callable[[], object] | None = None, duration_ms: int = 3
    ) -> None:
        self.status = status
        self.before = before
        self.duration_ms = duration_ms
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []
        self._lock = threading.Lock()

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryResult:
        if self.before:
            self.before()
        with self._lock:
            self.sent.append((url, body, dict(headers)))
        if self.status is None:
            return DeliveryResult(
                error="webhook-timeout", status_code=None, duration_ms=self.duration_ms, response_excerpt="timed out"
            )
        ok = 200 <= self.status < 300
        return DeliveryResult(
            error=None if ok else "webhook-response-status",
            status_code=self.status,
            duration_ms=self.duration_ms,
            response_excerpt="ok",
        )


class FakeClock:
    """A clock that moves one millisecond on each reading, so creation order is time order."""

    def __init__(self, start: dt.datetime = BASE_TIME) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(milliseconds=1)
        return self.now


@dataclass
class FakeDeliverer(Deliverer):
    """A Deliverer on the recording fakes, its fields typed as the fakes so that a test reads
    what they recorded (`sender.sent`, `queue.jobs`) and swaps them; the jobs see only the
    Protocols (webhook_service.ports), as they do the real queue and sender."""

    store: Store
    sender: FakeSender
    queue: FakeQueue
    test_queue: FakeQueue | None = None
    slow_queue: FakeQueue | None = None
    fast_sender: FakeSender | None = None
    clock: FakeClock = field(default_factory=FakeClock)


@dataclass
class ThreeLaneDeliverer(FakeDeliverer):
    """A FakeDeliverer with every lane and both senders present (none is None)."""

    test_queue: FakeQueue = field(default_factory=FakeQueue)
    slow_queue: FakeQueue = field(default_factory=FakeQueue)
    fast_sender: FakeSender = field(default_factory=FakeSender)


@dataclass
class FakeServices(ProcessServices):
    """Services on recording queues, typed as such so that a test reads their `jobs`."""

    queue: FakeQueue
    test_queue: FakeQueue | None = None
    slow_queue: FakeQueue | None = None


@dataclass
class ThreeLaneServices(FakeServices):
    """FakeServices with a tests lane and a slow lane of their own (neither is None)."""

    test_queue: FakeQueue = field(default_factory=FakeQueue)
    slow_queue: FakeQueue = field(default_factory=FakeQueue)


class RecordingClient:
    """Wraps a boto3 client and records the name of every method called on it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return call


def as_dynamodb(proxy: object) -> DynamoDBClient:
    """A test's proxy of the DynamoDB client (RecordingClient and the like: what they do not
    change they forward by name, through __getattr__) typed as the client, to hand to a Store.
    No static type can say what __getattr__ forwards, so this cast is the claim."""
    return cast("DynamoDBClient", proxy)


def sqs_event(*bodies: str) -> dict[str, Any]:
    """An SQS event source's batch, as Lambda hands it to the deliver function."""
    return {
        "Records": [
            {
                "messageId": f"m{n}",
                "receiptHandle": f"r{n}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for n, body in enumerate(bodies)
        ]
    }


def count_partition(backing: Backing, organisation: str) -> int:
    """How many items an organisation's partition holds, through the table's own key schema."""
    table = backing.dynamodb.describe_table(TableName=backing.table_name)["Table"]
    (hash_key,) = [k["AttributeName"] for k in table["KeySchema"] if k["KeyType"] == "HASH"]
    response = backing.dynamodb.query(
        TableName=backing.table_name,
        KeyConditionExpression="#pk = :pk",
        ExpressionAttributeNames={"#pk": hash_key},
        ExpressionAttributeValues={":pk": {"S": org_pk(organisation)}},
        Select="COUNT",
        ConsistentRead=True,
    )
    return int(response["Count"])


def load_function(name: str) -> ModuleType:
    """The `app` module of functions/<name>/ under a name of its own (every one is app.py)."""
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"functions_{name}_app", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def http_event(
    method: str,
    path: str,
    *,
    route: str | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    body: str | bytes | None = None,
    base64_body: bool = False,
    query: dict[str, str] | None = None,
    path_params: dict[str, str] | None = None,
    request_id: str = "req-unit-1",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as the gateway would send it."""
    all_headers = {"content-type": "application/json", "user-agent": "unit-test"}
    if token is not None:
        all_headers["authorization"] = f"Token {token}"
    all_headers.update(headers or {})
    raw = body.encode("utf-8") if isinstance(body, str) else body
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route or f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": all_headers,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1"},
            "requestId": request_id,
            "routeKey": route or f"{method} {path}",
            "stage": "$default",
        },
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = query
    if path_params:
        event["pathParameters"] = path_params
    if raw is not None:
        event["body"] = base64.b64encode(raw).decode("ascii") if base64_body else raw.decode("utf-8")
    return event


def response_body(response: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response["body"])
    return body


@dataclass
class Context:
    """A Lambda context with a fixed request id."""

    aws_request_id: str = "3f2a9d6e-0000-4000-8000-00000000beef"


class CountdownContext:
    """A Lambda context whose remaining time runs down with the real clock from `seconds`."""

    aws_request_id = "3f2a9d6e-0000-4000-8000-00000000c0de"

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class ScriptedContext:
    """A Lambda context whose remaining time is set by the test (`seconds`), to stand for an
    invocation's clock that jobs use up."""

    aws_request_id = "3f2a9d6e-0000-4000-8000-00000000feed"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()

    def use(self, seconds: float) -> None:
        with self._lock:
            self.seconds -= seconds

    def get_remaining_time_in_millis(self) -> int:
        with self._lock:
            return max(0, int(self.seconds * 1000))


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def emf_metrics(lines: list[dict[str, Any]]) -> list[tuple[str, dict[str, str], Any]]:
    """(metric name, dimensions, value) of every EMF line."""
    found: list[tuple[str, dict[str, str], Any]] = []
    for line in lines:
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == "RicloudWebhooks"
            dimensions = {name: line[name] for group in directive["Dimensions"] for name in group}
            found.extend((m["Name"], dimensions, line[m["Name"]]) for m in directive["Metrics"])
    return found


def tasks_of(services: Services, caller: Principal, config_id: str) -> list[dict[str, Any]]:
    """The config's tasks as GET /tasks?target= lists them (newest first), through the service."""
    return list(task_cases.list_tasks(services, caller, {"target": config_id})["data"])


def three_lane_deliverer(store: Store, clock: FakeClock, **overrides: Any) -> ThreeLaneDeliverer:
    """A Deliverer with all three lanes on fake queues, a fast-lane sender and a full one
    (both FakeSender), no jitter, the 2 s fast lane and the 15 s deadline."""
    settings: dict[str, Any] = {
        "store": store,
        "sender": FakeSender(),
        "queue": FakeQueue(),
        "clock": clock,
        "jitter": lambda: 0.0,
        "test_queue": FakeQueue(),
        "slow_queue": FakeQueue(),
        "fast_sender": FakeSender(),
        "fast_timeout": 2.0,
        "delivery_timeout": 15.0,
        **overrides,
    }
    return ThreeLaneDeliverer(**settings)
