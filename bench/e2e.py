"""The local stack end to end (reported, no target yet): `python -m devstack` started as
`make dev` starts it, a real receiver on 127.0.0.1, and real HTTP.

- latency: from `POST /configs/webhook` to the config reading `valid` (polled every 10 ms),
  for configs created one after another; p50 and p95;
- throughput: configs created per second by 8 concurrent clients, and the time until all of
  them are `valid`.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from devstack.aws import free_port
from devstack.receiver import Receiver

ROOT = Path(__file__).resolve().parents[1]
SEQUENTIAL = int(os.environ.get("E2E_SEQUENTIAL", "30"))
CLIENTS = 8
CONCURRENT = int(os.environ.get("E2E_CONCURRENT", "160"))


def start_stack(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    info = workdir / "info.json"
    env = {
        **os.environ,
        "DEV_TOKEN": "rwk_" + secrets.token_urlsafe(32),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    log = Path(os.environ["DEVSTACK_LOG"]) if os.environ.get("DEVSTACK_LOG") else workdir / "devstack.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "--quiet", "--port", str(free_port()), "--info-file", str(info)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    deadline = time.monotonic() + 90
    while not info.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the local stack did not start")
        time.sleep(0.1)
    return process, json.loads(info.read_text())


def until_valid(session: requests.Session, url: str, config_id: str, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = session.get(f"{url}/configs/webhook/{config_id}", timeout=10).json()["state"]
        if state == "valid":
            return time.perf_counter()
        if state == "invalid":
            raise RuntimeError(f"config {config_id} became invalid")
        time.sleep(0.01)
    raise TimeoutError(config_id)


def main() -> int:
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as workdir:
        process, info = start_stack(Path(workdir))
        try:
            url, headers = info["url"], {"Authorization": f"Token {info['token']}"}
            session = requests.Session()
            session.headers.update(headers)
            latencies = []
            for n in range(SEQUENTIAL):
                started = time.perf_counter()
                response = session.post(
                    f"{url}/configs/webhook", json={"url": receiver.url(f"/ok/seq{n}/")}, timeout=10
                )
                latencies.append(until_valid(session, url, response.json()["id"]) - started)

            def create(n: int) -> str:
                with requests.Session() as own:
                    own.headers.update(headers)
                    made = own.post(f"{url}/configs/webhook", json={"url": receiver.url(f"/ok/par{n}/")}, timeout=30)
                    made.raise_for_status()
                    return str(made.json()["id"])

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
                ids = list(pool.map(create, range(CONCURRENT)))
            created = time.perf_counter() - started
            for config_id in ids:
                until_valid(session, url, config_id, timeout=120)
            all_valid = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(timeout=15)
            receiver.close()

    ms = sorted(x * 1000 for x in latencies)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(f"local stack end to end (moto storage, real HTTP), {SEQUENTIAL} configs one after another:")
    print(f"  POST to valid: p50 {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms (min {ms[0]:.0f}, max {ms[-1]:.0f})")
    print(f"  {CONCURRENT} configs by {CLIENTS} concurrent clients: {CONCURRENT / created:.1f} created/s,")
    print(f"  all valid after {all_valid:.1f} s ({len(set(ids))} distinct ids)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
