"""Delivery benchmarks, each against a baseline measured in the same run.

1. Concurrency: the deliver function's batch handler runs a batch of 10 test jobs to a
   receiver that answers after 200 ms, against the same handler running a batch of 1.
   Deliveries are real HTTP to 127.0.0.1. Storage three ways: (a) in memory, each call
   sleeping 5 ms like a DynamoDB round trip, so that what is measured is the function's own
   concurrency (the target is judged on this one); (b) moto in this process, each call then
   waiting 5 ms; (c) a moto server in its own process. moto spends several ms of CPU per call
   and runs calls one at a time (a transaction copies the table), so (b) and (c) show what
   the local stack's storage costs, not what DynamoDB would.
   Target: the batch of 10 takes at most 1.5x the batch of 1.
2. Connection reuse: sequential signed deliveries (signing included) through the Sender to
   one HTTPS receiver on 127.0.0.1, against a bare keep-alive requests.Session posting the
   same bytes to the same receiver. Target: at least 0.8x its rate, and one connection.

Rounds alternate the two sides; figures are medians of the rounds, with min and max.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests
import trustme

from devstack import aws, template
from devstack.aws import SerialClient
from devstack.poller import sqs_event
from devstack.receiver import Receiver

ROUNDS = int(os.environ.get("DELIVERY_ROUNDS", "5"))
DYNAMODB_LATENCY_MS = 5  # a typical single-digit-millisecond DynamoDB call, seen from Lambda
REQUESTS_PER_ROUND = int(os.environ.get("REUSE_REQUESTS", "200"))


@dataclass
class Context:
    aws_request_id: str = "bench"


class _NoQueue:
    def send(self, job: dict[str, Any], delay_seconds: int = 0) -> str:
        return "not-sent"


class _DynamoLikeClient:
    """A DynamoDB client stand-in for timing: moto in this process does the work, one call
    at a time (moto is not safe for concurrent transactions), and each call then waits
    DYNAMODB_LATENCY_MS outside the lock, as a network round trip to DynamoDB does: calls
    of different jobs overlap there, as they do against DynamoDB."""

    def __init__(self, client: Any, latency_s: float) -> None:
        self._serial = SerialClient(client)  # moto's work, one call at a time
        self._latency_s = latency_s

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._serial, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            time.sleep(self._latency_s)  # the round trip, outside the lock: calls overlap here
            return result

        return call


class _InMemoryConfigs:
    """The deliver function's side of the configs repository, in memory, each call waiting like a DynamoDB
    round trip (sleeping, so calls of different jobs overlap). It holds the tasks and configs
    the batch needs, read beforehand from the real table, and records what is written back."""

    def __init__(self, tasks: dict[str, Any], configs: dict[str, Any], latency_s: float) -> None:
        self.tasks, self.configs, self.latency_s = tasks, configs, latency_s
        self.outcomes: dict[str, str] = {}
        self._lock = threading.Lock()

    def _wait(self) -> None:
        time.sleep(self.latency_s)

    def get_task_and_config(self, organisation: str, task_id: str, config_id: str) -> tuple[Any, Any]:
        self._wait()
        return self.tasks.get(task_id), self.configs.get(config_id)

    def get(self, organisation: str, config_id: str) -> Any:
        self._wait()
        return self.configs.get(config_id)

    def start_task(self, task: Any, event_id: str, now: Any) -> Any:
        from dataclasses import replace

        self._wait()
        with self._lock:
            started = replace(task, state="processing", event_id=event_id, date_started=now)
            self.tasks[task.id] = started
        return started

    def record_test_outcome(self, config: Any, new_state: str, task: Any, event: Any, attempt: Any = None) -> str:
        self._wait()
        with self._lock:
            self.outcomes[task.id] = task.state
        return "applied"


class _InMemoryStore:
    """A store whose only repository the test jobs use, configs, is _InMemoryConfigs."""

    def __init__(self, tasks: dict[str, Any], configs: dict[str, Any], latency_s: float) -> None:
        self.configs = _InMemoryConfigs(tasks, configs, latency_s)


def concurrency_in_memory() -> bool:
    """Batches whose storage is _InMemoryStore: the deliver function's own concurrency."""
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "b", "AWS_SECRET_ACCESS_KEY": "b"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws

    with mock_aws():
        return _concurrency(
            None,
            f"storage in memory, {DYNAMODB_LATENCY_MS} ms per call like a DynamoDB round trip",
        )


def concurrency_dynamo_like() -> bool:
    """The same batches with storage that behaves like DynamoDB (see _DynamoLikeClient)."""
    import boto3
    from moto import mock_aws

    for name, value in (
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "b"),
        ("AWS_SECRET_ACCESS_KEY", "b"),
    ):
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        return _concurrency(
            lambda table: _DynamoLikeClient(boto3.client("dynamodb"), DYNAMODB_LATENCY_MS / 1000),
            f"storage on moto in this process, then {DYNAMODB_LATENCY_MS} ms per call",
        )


def concurrency_moto_server() -> bool:
    port = aws.free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        aws.use_local_credentials(f"http://127.0.0.1:{port}")
        return _concurrency(lambda table: None, "storage on a moto server (it runs calls one at a time)")
    finally:
        moto.terminate()
        moto.wait(timeout=10)


def _concurrency(make_client: Any, storage: str) -> bool:
    """`make_client(table)` gives the DynamoDB client for the table; None: the in-memory store."""
    from webhook_service import admin
    from webhook_service.auth import Authenticator
    from webhook_service.consumer import handle_batch
    from webhook_service.domain.tenants import KeyState, Principal
    from webhook_service.jobs.deliverer import Deliverer
    from webhook_service.sender import Sender
    from webhook_service.service import configs as config_cases
    from webhook_service.service import tasks as task_cases
    from webhook_service.service.context import Services
    from webhook_service.storage.store import Store
    from webhook_service.wiring import use_deliverer

    receiver = Receiver()
    sender = Sender(allow_private=True)
    try:

        def batch_of(count: int) -> dict[str, Any]:
            """`count` test jobs, on a table of their own: moto copies a whole table in every
            transaction (DynamoDB does not), so a table that grew would slow later rounds."""
            stack = aws.deploy(template.load_template(), {"Stage": "dev"}, stack_name=f"bench-{uuid.uuid4().hex[:8]}")
            store = Store(stack.refs["Table"], make_client(stack.refs["Table"]) if make_client else None)
            services = Services(store=store, queue=_NoQueue(), authenticator=Authenticator(store.organisations))
            services.allow_private_targets = True
            organisation = admin.create_organisation(store.organisations, "Bench")["id"]
            caller = Principal(key_id="bench", organisation=organisation, state=KeyState.ACTIVE)
            bodies = []
            for n in range(count):
                config = config_cases.create_config(services, caller, {"url": receiver.url(f"/slow/0.2/c{n}/")})
                task = task_cases.list_tasks(services, caller, {"target": config["id"]})["data"][0]
                job = {"job": "test", "task": task["id"], "organisation": organisation, "config": config["id"]}
                bodies.append(json.dumps(job))
            used: Any = store
            if make_client is None:
                tasks = {
                    t.id: t for t in (store.configs.get_task(organisation, json.loads(b)["task"]) for b in bodies) if t
                }
                configs = {c.id: c for c in (store.configs.get(organisation, t.target) for t in tasks.values()) if c}
                used = _InMemoryStore(tasks, configs, DYNAMODB_LATENCY_MS / 1000)
            use_deliverer(Deliverer(store=used, sender=sender, queue=_NoQueue()))
            messages = [{"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": body} for n, body in enumerate(bodies)]
            return sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")

        def timed(count: int) -> float:
            event = batch_of(count)
            started = time.perf_counter()
            response = handle_batch(event, Context())
            elapsed = time.perf_counter() - started
            assert response == {"batchItemFailures": []}, response
            return elapsed

        timed(1)  # warm: the session, the first connections
        single, batch = [], []
        for _ in range(ROUNDS):
            single.append(timed(1))
            batch.append(timed(10))
        ratio = statistics.median(batch) / statistics.median(single)
        print(f"delivery concurrency: one SQS batch, receiver answers after 200 ms; {storage}")
        print(f"  batch of 1 : {_fmt_s(single)}")
        print(f"  batch of 10: {_fmt_s(batch)}")
        print(f"  ratio {ratio:.2f} (target <= 1.5): {'met' if ratio <= 1.5 else 'NOT met'}")
        return ratio <= 1.5
    finally:
        use_deliverer(None)
        receiver.close()


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def connection_reuse() -> bool:
    from webhook_service.domain.configs import generate_secret
    from webhook_service.sender import Sender
    from webhook_service.signing import signature_headers

    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("receiver.test", "127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    body = json.dumps({"id": "e", "resource": "event", "data": {"x": "y" * 400}}, separators=(",", ":")).encode()
    secret = generate_secret()

    with tempfile.NamedTemporaryFile(suffix=".pem") as ca_file:
        authority.cert_pem.write_to_path(ca_file.name)

        def bare(receiver: Receiver) -> float:
            session = requests.Session()
            session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify
            session.verify = ca_file.name
            url = receiver.url("/ok/bare")
            started = time.perf_counter()
            for _ in range(REQUESTS_PER_ROUND):
                response = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
                assert response.content
            return REQUESTS_PER_ROUND / (time.perf_counter() - started)

        def ours(receiver: Receiver) -> float:
            sender = Sender(allow_private=True, resolver=lambda host, port: ["127.0.0.1"], ssl_context=client_context)
            started = time.perf_counter()
            for n in range(REQUESTS_PER_ROUND):
                event_id = f"evt{n}"
                result = sender.post(
                    receiver.url(f"/ok/ours/{event_id}", host="receiver.test"),
                    body,
                    signature_headers(secret, event_id, body),
                )
                assert result.ok, result
            return REQUESTS_PER_ROUND / (time.perf_counter() - started)

        rates: dict[str, list[float]] = {"bare": [], "ours": []}
        connections: dict[str, list[int]] = {"bare": [], "ours": []}
        for _ in range(ROUNDS):
            for name, run in (("bare", bare), ("ours", ours)):
                receiver = Receiver(tls=server_context)
                try:
                    rates[name].append(run(receiver))
                finally:
                    receiver.close()
                connections[name].append(receiver.connections)
    ratio = statistics.median(rates["ours"]) / statistics.median(rates["bare"])
    one_connection = set(connections["ours"]) == {1}
    print(f"connection reuse: {REQUESTS_PER_ROUND} sequential HTTPS posts per round to 127.0.0.1")
    print(f"  bare requests.Session : {_fmt_rate(rates['bare'])}, connections per round {connections['bare']}")
    print(f"  Sender (signed)       : {_fmt_rate(rates['ours'])}, connections per round {connections['ours']}")
    met = ratio >= 0.8 and one_connection
    print(f"  ratio {ratio:.2f} (target >= 0.8, one connection): {'met' if met else 'NOT met'}")
    return met


def _fmt_s(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})"


def _fmt_rate(values: list[float]) -> str:
    return f"{statistics.median(values):.0f}/s (min {min(values):.0f}, max {max(values):.0f})"


def main() -> int:
    concurrency_in_memory()
    concurrency_dynamo_like()
    concurrency_moto_server()
    connection_reuse()
    return 0


if __name__ == "__main__":
    sys.exit(main())
