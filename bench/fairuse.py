"""Fair use across organisations on the local stack (docs/design.md §18, docs/benchmarks.md).

`python -m devstack --api-workers 8` (the API's functions in worker processes, up to 8 at once
per function, as Lambda instances), real HTTP, a fast receiver on 127.0.0.1, and two
organisations, each with a valid default config and delivered events:

- B works normally: one client, a request every B_PAUSE seconds, round robin over reads
  (its key, configs, one config, tasks, events, the organisation) and, every tenth request, a
  test of its config. B runs alone for B_ALONE_SECONDS first, then again, in the same run on
  the same stack, while A floods.
- A floods every route it can from FLOOD_THREADS threads for FLOOD_SECONDS, in a process of
  its own (so its client does not slow B's): creates, tests, resends, updates, reads. A
  flood of WARMUP_SECONDS comes first, unmeasured, so that every function has its
  environments before B is measured (a cold start is not the neighbour's doing).

A's rate is set by the operator command line to A_RATE a second, bursts of A_BURST (by
default 5 and 10), not the default 50 and 100: the local stack's storage is moto, which
answers one DynamoDB call at a time (about 8 ms each on a loaded 2-core machine, some 120 a
second), and an admitted request makes 3 to 6 calls, so the stack could not serve A 50
requests a second and the limit would never be reached. The default's arithmetic is the unit
tests' (tests/unit/test_rate_limits.py); what this shows is the same algorithm, across
worker processes, against an organisation that floods.

Printed: A's answers by status, whether every 429 carried `Retry-After` and the RateLimit
fields, A's admitted rate (answers the rate limit let through) against its limit, B's p50
and p95 alone and beside A, and their ratio, B's 429s (none expected), and how many
environments (worker processes) each function ran in. Every wait is bounded.
Targets: A's admitted rate within 10 % of 50/s (counting the burst of 100 it starts with),
B no 429 and p95 beside A at most 3x alone, at least 4 environments of a flooded function.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from devstack.aws import free_port
from devstack.receiver import Receiver

ROOT = Path(__file__).resolve().parents[1]
FLOOD_THREADS = int(os.environ.get("FAIRUSE_THREADS", "16"))
FLOOD_SECONDS = float(os.environ.get("FAIRUSE_SECONDS", "30"))
FLOOD_NICE = int(os.environ.get("FAIRUSE_FLOOD_NICE", "10"))
B_ALONE_SECONDS = float(os.environ.get("FAIRUSE_B_ALONE_SECONDS", "20"))
B_PAUSE = 0.1  # B's pace: about 10 requests a second, a fifth of its limit
# Environments per function: enough that B seldom waits for one A holds (Lambda makes
# instances as requests come), few enough that the flood does not keep starting new ones on
# this machine's two cores (each a cold start's CPU): benchmarks.md compares 4, 8 and 17.
API_WORKERS = int(os.environ.get("FAIRUSE_API_WORKERS", "8"))
EVENTS_EACH = 12  # delivered events each organisation starts with (what A resends)
RATE = int(os.environ.get("FAIRUSE_A_RATE", "5"))  # A's own rate (set-limits), a second
BURST = int(os.environ.get("FAIRUSE_A_BURST", "10"))
WARMUP_SECONDS = float(os.environ.get("FAIRUSE_WARMUP_SECONDS", "6"))
TARGET_RATE_ERROR, TARGET_P95_RATIO, TARGET_INSTANCES = 0.10, 3.0, 4
STARTUP_SECONDS = 120.0


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    info: dict[str, str]
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=20)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "AWS_ENDPOINT_URL": self.info["aws_endpoint"],
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "TABLE_NAME": self.info["table"],
            "QUEUE_URL": self.info["queue_url"],
        }

    def operator(self, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "webhook_service", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            cwd=ROOT,
        )
        found: dict[str, Any] = json.loads(done.stdout)
        return found

    def environments(self) -> dict[str, int]:
        """How many environments (worker processes) each API function was given."""
        started: dict[str, int] = {}
        for name, count in re.findall(
            r"(\w+Function): environment (\d+) started", self.log.read_text(errors="replace")
        ):
            started[name] = max(started.get(name, 0), int(count))
        return started


def start_stack(workdir: Path, api_workers: int) -> Stack:
    """The local stack as `make dev` runs it, with the API's functions in worker processes."""
    info_path, log = workdir / "info.json", workdir / "devstack.log"
    env = {
        **os.environ,
        "DEV_TOKEN": "rwk_" + secrets.token_urlsafe(32),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "DELIVERY_LOOPBACK_ONLY": "1",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "devstack", "--quiet", "--port", str(free_port()), "--info-file", str(info_path)),
            *("--api-workers", str(api_workers)),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    deadline = time.monotonic() + STARTUP_SECONDS
    while not info_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the local stack did not start; see {log}")
        time.sleep(0.1)
    return Stack(process, json.loads(info_path.read_text()), log)


@dataclass
class Tenant:
    """An organisation with a key, a valid default config and delivered events."""

    url: str
    token: str
    organisation: str
    config: str
    events: list[str] = field(default_factory=list)

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {self.token}"
        return session


def wait_for(check: Any, what: str, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise TimeoutError(what)


def tenant(stack: Stack, receiver: Receiver, name: str) -> Tenant:
    organisation = stack.operator("create-organisation", "--name", name)["id"]
    token = stack.operator("create-key", "--organisation", organisation)["token"]
    url = stack.info["url"]
    with requests.Session() as http:
        http.headers["Authorization"] = f"Token {token}"
        config = http.post(f"{url}/configs/webhook", json={"url": receiver.url(f"/ok/{name}/")}, timeout=30).json()
        wait_for(
            lambda: http.get(f"{url}/configs/webhook/{config['id']}", timeout=30).json()["state"] == "valid",
            f"{name}'s config to be valid",
        )
        http.post(f"{url}/organisation", json={"webhook_config_default": config["id"]}, timeout=30)
        made = Tenant(url, token, organisation, config["id"])
        for n in range(EVENTS_EACH):
            event = stack.operator(
                "publish-event", "--organisation", organisation, "--type", "session", "--action", "completed",
                "--data", json.dumps({"n": n}),
            )  # fmt: skip
            made.events.append(event["id"])
        for event_id in made.events:
            wait_for(
                lambda e=event_id: http.get(f"{url}/events/{e}", timeout=30).json()["state"] == "delivered",
                f"{name}'s event {event_id} to be delivered",
            )
    return made


# -- B: normal work ------------------------------------------------------------------------------


def b_requests(b: Tenant) -> itertools.cycle[tuple[str, str, Any]]:
    reads: list[tuple[str, str, Any]] = [
        ("GET", "/key", None),
        ("GET", "/configs/webhook", None),
        ("GET", f"/configs/webhook/{b.config}", None),
        ("GET", "/tasks?limit=5", None),
        ("GET", "/events?limit=5", None),
        ("GET", "/organisation", None),
        ("GET", f"/events/{b.events[0]}", None),
        ("GET", f"/events/{b.events[0]}/attempts", None),
        ("GET", "/key", None),
        ("POST", f"/configs/webhook/{b.config}/test", {}),
    ]
    return itertools.cycle(reads)


def b_works(b: Tenant, seconds: float) -> tuple[list[float], Counter[int]]:
    """B's latencies (ms) and statuses over `seconds`."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    work = b_requests(b)
    with b.session() as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            method, path, body = next(work)
            started = time.perf_counter()
            response = http.request(method, b.url + path, json=body, timeout=30)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[response.status_code] += 1
            time.sleep(B_PAUSE)
    return latencies, statuses


# -- A: the flood --------------------------------------------------------------------------------


def a_routes(a: Tenant, receiver_url: str) -> list[tuple[str, str, Any]]:
    routes: list[tuple[str, str, Any]] = [
        ("POST", "/configs/webhook", {"url": receiver_url}),
        ("POST", f"/configs/webhook/{a.config}/test", {}),
        ("POST", f"/configs/webhook/{a.config}", {"url": receiver_url}),
        ("GET", "/key", None),
        ("GET", "/configs/webhook", None),
        ("GET", f"/configs/webhook/{a.config}", None),
        ("GET", "/tasks", None),
        ("GET", "/events", None),
        ("GET", "/organisation", None),
    ]
    return routes


def a_request(a: Tenant, routes: list[tuple[str, str, Any]], step: int) -> tuple[str, str, Any]:
    """A's `step`-th request: the routes in turn, one turn in ten a resend (of each event in
    turn), so that every route takes its share of the flood."""
    turn = step % (len(routes) + 1)
    if turn < len(routes):
        return routes[turn]
    return ("POST", f"/events/{a.events[(step // (len(routes) + 1)) % len(a.events)]}/resend", {})


def flood(a: Tenant, receiver_url: str, threads: int, seconds: float, out: Any) -> None:
    """A's flood (in a process of its own): every thread round robin over every route. The
    flooder's own CPU is not the service's (on AWS it is another machine): its process runs
    at a lower priority (FLOOD_NICE), so that when the cores are short the stack and B come
    first; it still sends as fast as it is answered."""
    os.nice(FLOOD_NICE)
    routes = a_routes(a, receiver_url)
    tally: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def run(n: int) -> None:
        mine: Counter[str] = Counter()
        with a.session() as http:
            start.wait()
            deadline = time.monotonic() + seconds
            for step in itertools.count(n):
                if time.monotonic() >= deadline:
                    break
                method, path, body = a_request(a, routes, step)
                try:
                    response = http.request(method, a.url + path, json=body, timeout=30)
                except requests.RequestException:
                    mine["error"] += 1
                    continue
                mine.update(classify(response))
        with lock:
            tally.update(mine)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 60)
    tally["elapsed_ms"] = int((time.monotonic() - began) * 1000)
    out.put(dict(tally))


def classify(response: requests.Response) -> list[str]:
    """What one of A's answers counts towards."""
    kinds = [f"status {response.status_code}"]
    has_rate = all(h in response.headers for h in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"))
    kinds.append("with RateLimit fields" if has_rate else "without RateLimit fields")
    if response.status_code != 429:
        return [*kinds, "admitted"]
    params = response.json().get("params", {})
    named = next(iter(params), "none")
    kinds.append(f"429 {named}")
    if "Retry-After" in response.headers and int(response.headers["Retry-After"]) >= 1:
        kinds.append("429 with Retry-After")
    return kinds if named == "requests" else [*kinds, "admitted"]


def run_flood(a: Tenant, receiver_url: str, seconds: float) -> dict[str, int]:
    """A flood in a process of its own, waited for."""
    context = multiprocessing.get_context("spawn")
    results: Any = context.Queue()
    flooder = context.Process(target=flood, args=(a, receiver_url, FLOOD_THREADS, seconds, results))
    flooder.start()
    tally: dict[str, int] = results.get(timeout=seconds + 120)
    flooder.join(30)
    return tally


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as workdir:
        stack = start_stack(Path(workdir), API_WORKERS)
        try:
            a, b = tenant(stack, receiver, "flooder"), tenant(stack, receiver, "neighbour")
            limits = ("--rate", str(RATE), "--burst", str(BURST))
            stack.operator("set-limits", "--organisation", a.organisation, *limits)
            run_flood(a, receiver.url("/ok/flood/"), WARMUP_SECONDS)  # every function's environments
            time.sleep(BURST / RATE + 2)  # A's bucket whole again
            alone, alone_statuses = b_works(b, B_ALONE_SECONDS)
            context = multiprocessing.get_context("spawn")
            results: Any = context.Queue()
            flooder = context.Process(
                target=flood, args=(a, receiver.url("/ok/flood/"), FLOOD_THREADS, FLOOD_SECONDS, results)
            )
            flooder.start()
            beside, beside_statuses = b_works(b, FLOOD_SECONDS)
            tally = results.get(timeout=FLOOD_SECONDS + 120)
            flooder.join(30)
            environments = stack.environments()
        finally:
            stack.stop()
            receiver.close()
    report(tally, alone, alone_statuses, beside, beside_statuses, environments)
    return 0


def report(
    tally: dict[str, int],
    alone: list[float],
    alone_statuses: Counter[int],
    beside: list[float],
    beside_statuses: Counter[int],
    environments: dict[str, int],
) -> None:
    seconds = tally["elapsed_ms"] / 1000
    statuses = {k: v for k, v in sorted(tally.items()) if k.startswith("status")}
    refused = tally.get("429 requests", 0)
    admitted = tally.get("admitted", 0)
    expected = BURST + RATE * seconds
    rate_error = abs(admitted - expected) / expected
    p95_alone, p95_beside = percentile(alone, 0.95), percentile(beside, 0.95)
    ratio = p95_beside / p95_alone
    flooded = {name: count for name, count in environments.items() if count > 1}
    print(f"fair use on the local stack: A floods from {FLOOD_THREADS} threads for {seconds:.1f} s, B works beside it")
    print(f"  A's rate (set-limits): {RATE}/s, bursts of {BURST}; up to {API_WORKERS} environments per function")
    print(f"  A answers: {sum(statuses.values())} ({statuses})")
    quota_refusals = {k: v for k, v in tally.items() if k.startswith("429 ") and k not in ("429 with Retry-After",)}
    print(f"  A's 429s by what they name: {quota_refusals}")
    all_429 = tally.get("status 429", 0)
    print(f"  A's 429s with Retry-After >= 1: {tally.get('429 with Retry-After', 0)} of {all_429}")
    print(f"  answers with the RateLimit fields: {tally.get('with RateLimit fields', 0)}, without: "
          f"{tally.get('without RateLimit fields', 0)}")  # fmt: skip
    print(f"  A admitted by its rate: {admitted} in {seconds:.1f} s = {admitted / seconds:.1f}/s; "
          f"limit {RATE}/s + burst {BURST} = {expected:.0f} expected; off by {rate_error:.1%} "
          f"(target <= {TARGET_RATE_ERROR:.0%}); refused {refused}")  # fmt: skip
    print(f"  A admitted, burst left out: {(admitted - BURST) / seconds:.1f}/s against {RATE}/s")
    print(f"  B alone:  {len(alone)} requests, p50 {statistics.median(alone):.1f} ms, p95 {p95_alone:.1f} ms, "
          f"statuses {dict(alone_statuses)}")  # fmt: skip
    print(f"  B beside A: {len(beside)} requests, p50 {statistics.median(beside):.1f} ms, p95 {p95_beside:.1f} ms, "
          f"statuses {dict(beside_statuses)}")  # fmt: skip
    print(f"  B's p95 beside A / alone: {ratio:.2f}x (target <= {TARGET_P95_RATIO:.0f}x); B's 429s: "
          f"{alone_statuses.get(429, 0) + beside_statuses.get(429, 0)}")  # fmt: skip
    print(f"  environments (worker processes) per API function: {dict(sorted(environments.items()))}")
    print(f"  functions that ran in more than one at once: {len(flooded)}, most {max(flooded.values(), default=0)} "
          f"(target >= {TARGET_INSTANCES})")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
