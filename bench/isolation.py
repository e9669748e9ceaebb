"""Isolation between organisations on the local stack (docs/isolation.md, docs/benchmarks.md).

`python -m devstack` as `make dev` runs it (real HTTP, worker processes per lane), and two
organisations:

- A has 20 keys, each with its own config; its receivers answer their first tests (so the
  configs are `valid`), then never answer again (they hold the connection open). Then A
  re-tests its 20 configs and publishes 200 events, 10 routed to each config.
- B creates configs one after another against a fast receiver and measures each one's
  `POST /configs/webhook` to the config reading `valid` (polled every 50 ms); then publishes
  events one after another to its default config and measures each one's publish to
  `delivered`.

B runs alone first, then again at once after A's load is started, in the same run, on the
same stack. Target: B's POST-to-valid p95 with A's load at most 2 s and at most 5x alone.
Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from bench.e2e import start_stack
from devstack.receiver import Receiver

A_CONFIGS = int(os.environ.get("ISOLATION_A_CONFIGS", "20"))
A_EVENTS = int(os.environ.get("ISOLATION_A_EVENTS", "200"))
B_CONFIGS = int(os.environ.get("ISOLATION_B_CONFIGS", "40"))
B_EVENTS = int(os.environ.get("ISOLATION_B_EVENTS", "20"))
HOLD_SECONDS = 60.0  # a receiver that "never answers" holds each request this long at most
WAIT_SECONDS = 60.0  # the longest any one thing is waited for
# Every poll is a DynamoDB read, and the local stack's storage answers one call at a time at
# about 6 ms of CPU each: two clients polling every 10 ms took half of it.
POLL_SECONDS = 0.05
TARGET_SECONDS, TARGET_RATIO = 2.0, 5.0


class Switchboard:
    """Receivers for organisation A: answer 200 until `stop_answering()`, then hold every
    request open without a byte of answer (until `close()`, or HOLD_SECONDS)."""

    def __init__(self) -> None:
        self.answering = threading.Event()
        self.answering.set()
        self.closing = threading.Event()
        self.received = 0
        self._lock = threading.Lock()
        board = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with board._lock:
                    board.received += 1
                if not board.answering.is_set():
                    board.closing.wait(HOLD_SECONDS)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 512  # the default 5 drops connections in bursts
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop_answering(self) -> None:
        self.answering.clear()

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


class Org:
    """An organisation's key and its HTTP session against the stack."""

    def __init__(self, url: str, token: str, organisation: str, key: str) -> None:
        self.url, self.organisation, self.key = url, organisation, key
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.session.post(self.url + path, json=body, timeout=30)
        if response.status_code >= 300:
            raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text}")
        answer: dict[str, Any] = response.json()
        return answer

    def get(self, path: str) -> dict[str, Any]:
        response = self.session.get(self.url + path, timeout=30)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def until(self, path: str, done: Callable[[dict[str, Any]], bool], timeout: float = WAIT_SECONDS) -> float:
        """Poll `path` every POLL_SECONDS until `done`; returns when it was seen done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done(self.get(path)):
                return time.perf_counter()
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"{path} not done after {timeout} s")


def operator(info: dict[str, str]) -> Any:
    """The operator's admin functions, pointed at the stack's local AWS, in this process."""
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": info["aws_endpoint"],
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    from webhook_service import admin
    from webhook_service.jobqueue import JobQueue
    from webhook_service.storage.store import Store

    return admin, Store(info["table"]), JobQueue(info["queue_url"])


Sample = tuple[float, float]  # (when it started, perf_counter; seconds it took)


STARTED_AFTER: dict[str, list[Sample]] = {}  # per run: each B test's task, created to started


def b_configs(b: Org, receiver: Receiver, label: str) -> list[Sample]:
    """Seconds from POST to `valid`, for B_CONFIGS configs one after another. Also notes,
    for each, how long its test task waited between being created and being started (its
    job's time in the queue and for a worker), read from the task afterwards."""
    found = []
    waits = STARTED_AFTER.setdefault(label, [])
    for n in range(B_CONFIGS):
        started = time.perf_counter()
        config = b.post("/configs/webhook", {"url": receiver.url(f"/ok/{label}/{n}/")})
        valid = b.until(f"/configs/webhook/{config['id']}", lambda c: c["state"] == "valid")
        found.append((started, valid - started))
        (task,) = b.get(f"/tasks?target={config['id']}")["data"]
        waits.append((started, (parse_time(task["date_started"]) - parse_time(task["date_created"])).total_seconds()))
    return found


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")


def b_events(b: Org, store: Any, queue: Any, label: str) -> list[Sample]:
    """Seconds from publishing to `delivered`, for B_EVENTS events one after another."""
    from webhook_service.events import publish

    found = []
    for n in range(B_EVENTS):
        started = time.perf_counter()
        event = publish(b.organisation, "session", "completed", {"run": label, "n": n}, store=store, queue=queue)
        delivered = b.until(f"/events/{event.id}", lambda e: e["state"] != "pending")
        if b.get(f"/events/{event.id}")["state"] != "delivered":
            raise RuntimeError(f"B's event {event.id} failed")
        found.append((started, delivered - started))
    return found


class StorageProbe:
    """Times one DynamoDB read of the local AWS every 100 ms: what a request waits for the
    local stack's storage, which answers one DynamoDB call at a time for everyone."""

    def __init__(self, store: Any, organisation: str) -> None:
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(store, organisation), daemon=True)
        self._thread.start()

    def _run(self, store: Any, organisation: str) -> None:
        while not self._stop.wait(0.1):
            started = time.perf_counter()
            store.organisations.get(organisation)
            self.samples.append((started, time.perf_counter() - started))

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s[0] <= end]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def summary(samples: list[Sample]) -> tuple[float, float, float, float]:
    """p50, p95, min and max in milliseconds."""
    ms = sorted(x * 1000 for _, x in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return statistics.median(ms), p95, ms[0], ms[-1]


def main() -> int:
    board, fast = Switchboard(), Receiver()
    with tempfile.TemporaryDirectory() as workdir:
        process, info = start_stack(Path(workdir))
        try:
            admin, store, queue = operator(info)

            def new_org(name: str, keys: int) -> tuple[Org, list[Org]]:
                organisation = admin.create_organisation(store.organisations, name)["id"]
                made = [admin.create_key(store.organisations, organisation) for _ in range(keys)]
                orgs = [Org(info["url"], token, organisation, key["id"]) for key, token in made]
                return orgs[0], orgs

            a, a_keys = new_org("A", A_CONFIGS)
            b, _ = new_org("B", 1)

            # A: one config per key, valid (its receiver answers the first test), routed.
            a_configs = []
            for n, key in enumerate(a_keys):
                config = a.post("/configs/webhook", {"url": board.url(f"/a/{n}/")})
                a.until(f"/configs/webhook/{config['id']}", lambda c: c["state"] == "valid")
                a.post(f"/keys/{key.key}", {"webhook_config": config["id"]})
                a_configs.append(config["id"])
            board.stop_answering()
            # B: a default config for its events.
            default = b.post("/configs/webhook", {"url": fast.url("/ok/b-default/")})
            b.until(f"/configs/webhook/{default['id']}", lambda c: c["state"] == "valid")
            b.post("/organisation", {"webhook_config_default": default["id"]})

            def b_run(label: str) -> tuple[list[Sample], list[Sample]]:
                """B's configs and B's events, each one after another, both at once."""
                with ThreadPoolExecutor(max_workers=2) as pool:
                    configs = pool.submit(b_configs, b, fast, label)
                    events = pool.submit(b_events, b, store, queue, label)
                    return configs.result(), events.result()

            probe = StorageProbe(store, b.organisation)
            alone_started = time.perf_counter()
            alone_configs, alone_events = b_run("alone")
            alone_probe = probe.between(alone_started, time.perf_counter())

            from webhook_service.events import publish

            def a_load() -> float:
                """A's 20 re-tests, then its 200 events, queued by 8 clients; the seconds it took."""
                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=8) as pool:
                    list(pool.map(lambda config_id: a.post(f"/configs/webhook/{config_id}/test"), a_configs))
                    list(
                        pool.map(
                            lambda n: publish(
                                a.organisation,
                                "session",
                                "completed",
                                {"n": n},
                                key=a_keys[n % A_CONFIGS].key,
                                store=store,
                                queue=queue,
                            ),
                            range(A_EVENTS),
                        )
                    )
                return time.perf_counter() - started

            load_started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=1) as background:
                a_loading = background.submit(a_load)
                loaded_configs, loaded_events = b_run("loaded")
                loaded_for = time.perf_counter() - load_started
                loaded_probe = probe.between(load_started, time.perf_counter())
                a_queued = a_loading.result(timeout=600)
            probe.stop()
            a_received = board.received
            a_tests = [a.get(f"/tasks?target={c}&limit=1")["data"][0]["state"] for c in a_configs]
        finally:
            process.terminate()
            process.wait(timeout=30)
            board.close()
            fast.close()

    print(f"isolation on the local stack: A has {A_CONFIGS} configs whose receivers never answer,")
    print(f"  {A_EVENTS} events routed to them and {A_CONFIGS} re-tests, queued by 8 clients in {a_queued:.1f} s;")
    print(f"  B's {B_CONFIGS} configs and {B_EVENTS} events, each one after another, alone, then from the")
    print(f"  moment A's load starts (B's loaded run took {loaded_for:.1f} s; A's receivers got {a_received} requests;")
    print(f"  A's re-tests at the end: {', '.join(f'{s} {a_tests.count(s)}' for s in sorted(set(a_tests)))})")
    rows = [
        ("B POST to valid", alone_configs, loaded_configs),
        ("B publish to delivered", alone_events, loaded_events),
        ("B test task created to started", STARTED_AFTER["alone"], STARTED_AFTER["loaded"]),
        ("one DynamoDB read (probe)", alone_probe, loaded_probe),
    ]
    for name, alone, loaded in rows:
        a50, a95, amin, amax = summary(alone)
        l50, l95, lmin, lmax = summary(loaded)
        print(f"  {name}: alone p50 {a50:.0f} ms, p95 {a95:.0f} ms (min {amin:.0f}, max {amax:.0f})")
        print(f"  {' ' * len(name)}  with A p50 {l50:.0f} ms, p95 {l95:.0f} ms (min {lmin:.0f}, max {lmax:.0f})")
        print(f"  {' ' * len(name)}  p95 ratio {l95 / a95:.2f}")
        slowest = sorted(loaded, key=lambda sample: -sample[1])[:3]
        when = ", ".join(f"{x * 1000:.0f} ms at +{t - load_started:.1f} s" for t, x in slowest)
        print(f"  {' ' * len(name)}  slowest with A: {when} (from A's first publish)")
    _, a95, _, _ = summary(alone_configs)
    _, l95, _, _ = summary(loaded_configs)
    met = l95 <= TARGET_SECONDS * 1000 and l95 <= TARGET_RATIO * a95
    print(f"  target (POST to valid p95 with A <= {TARGET_SECONDS:.0f} s and <= {TARGET_RATIO:.0f}x alone): ", end="")
    print("met" if met else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
