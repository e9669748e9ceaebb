"""The outage drill on the local stack with a real receiver on 127.0.0.1 (docs/design.md §19.2):
the receiver answers 503 while 200 events are published to its config, and every one fails;
it comes back, the config is given a `rate_limit`, and one recover call resends them all:
the receiver's own log shows each of the 200 delivered exactly once more, never more than the
rate (within 10 %) in any one second; a second recover of the same window, started while the
first runs, delivers nothing twice.

The stack is one of its own whose retry waits are scaled down (`RETRY_DELAY_SCALE`, as in
test_attempts_resend_rotation.py), so an event's five attempts take seconds, not hours."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from devstack.servers import LocalServer
from tests.integration.conftest import run_stack
from tests.support.stack import Client, LocalStack, new_caller
from tests.support.windows import most_in_any_window
from webhook_service.timefmt import format_datetime

pytestmark = pytest.mark.integration

RETRY_DELAY_SCALE = "0.0001"  # 1 min, 10 min, 1 h, 3 h -> SQS delays of a second or two
EVENTS = 200
RATE = 20  # deliveries a second: 200 events take about 10.5 s


class OutageReceiver:
    """A receiver that answers `status` and logs, for every POST, when it arrived (its own
    clock) and its `webhook-id`."""

    def __init__(self) -> None:
        self.status = 200
        self.log: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.log.append((time.monotonic(), self.headers.get("webhook-id", "")))
                    status = receiver.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = LocalServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def since(self, mark: int) -> list[tuple[float, str]]:
        with self._lock:
            return list(self.log[mark:])

    def mark(self) -> int:
        with self._lock:
            return len(self.log)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise TimeoutError(f"{what}: not within {timeout} s")


def count_of(client: Client, state: str) -> int:
    """The organisation's published events in `state` (not the config's test event), read
    whole (a list's `total_count` may be a lower bound: docs/design.md §15.1)."""
    response = client.get("/events", params={"state": state, "type": "session", "limit": 1000})
    assert response.status_code == 200, response.text
    return len(response.json()["data"])


@pytest.fixture(scope="module")
def quick_retries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with run_stack(tmp_path_factory, "devstack-recover", {"RETRY_DELAY_SCALE": RETRY_DELAY_SCALE}) as started:
        yield started


@pytest.fixture
def receiver() -> Iterator[OutageReceiver]:
    made = OutageReceiver()
    yield made
    made.close()


def test_the_outage_drill_one_recover_delivers_every_failed_event_once_more_at_the_rate(
    quick_retries: LocalStack, receiver: OutageReceiver
) -> None:
    client = new_caller(quick_retries, "Outage")
    config, test = client.create_and_wait(receiver.url)
    assert (config["state"], test["state"]) == ("valid", "succeeded")
    assert client.post("/organisation", json={"webhook_config_default": config["id"]}).status_code == 200
    since = format_datetime(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))

    receiver.status = 503  # the outage
    ids = {quick_retries.publish(client.organisation, {"n": n})["id"] for n in range(EVENTS)}
    # 1,000 attempts: about a minute on a loaded two-core machine (SQS delays are whole seconds)
    wait_for(lambda: count_of(client, "failed") == EVENTS, 180, f"{EVENTS} events failed")
    assert Counter(event_id for _, event_id in receiver.since(0) if event_id in ids) == dict.fromkeys(ids, 5)

    receiver.status = 200  # back
    assert client.post(f"/configs/webhook/{config['id']}", json={"rate_limit": RATE}).status_code == 200
    mark = receiver.mark()
    first = client.post(f"/configs/webhook/{config['id']}/recover", json={"since": since})
    assert first.status_code == 201, first.text
    assert (first.json()["type"], first.json()["state"]) == ("webhook_config.recover", "pending")
    wait_for(lambda: receiver.mark() > mark, 30, "the first recovered delivery")
    second = client.post(f"/configs/webhook/{config['id']}/recover", json={"since": since})  # while it runs
    assert second.status_code == 201, second.text

    ended = [client.wait_task(task.json()["id"], timeout=90) for task in (first, second)]
    wait_for(lambda: count_of(client, "delivered") == EVENTS, 90, f"{EVENTS} events delivered")
    quick_retries.wait_until_jobs_done()

    assert [task["state"] for task in ended] == ["succeeded", "succeeded"]
    assert sum(task["result"]["resent"] for task in ended) == EVENTS
    assert ended[0]["result"]["found"] >= ended[0]["result"]["resent"] > 0
    recovered = receiver.since(mark)
    assert Counter(event_id for _, event_id in recovered) == dict.fromkeys(ids, 1)  # once more each, none twice
    busiest = most_in_any_window([at for at, _ in recovered])
    print(f"recovered: {len(recovered)} deliveries; most in any second at the receiver: {busiest} (rate {RATE})")
    assert busiest <= RATE * 1.1  # the rate, measured at the receiver, within 10 %
    listed = client.get("/tasks", params={"type": "webhook_config.recover", "target": config["id"]}).json()
    assert {task["id"] for task in listed["data"]} == {first.json()["id"], second.json()["id"]}
