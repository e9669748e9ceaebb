"""Fair use on a local stack whose API functions run in worker processes, up to 4 at once per
function, as Lambda instances (`--api-workers`, docs/design.md §18): each process remembers
only what it saw, and the table alone is shared.

- An organisation that floods one route from 8 threads is held to its rate across the
  processes that answer it (never more than its burst plus its rate for the time, and within
  10 % of it), each refusal a 429 with `Retry-After` and the RateLimit fields; another
  organisation working beside it gets no 429.
- 20 resends of one event at once: one is accepted, one delivery is sent.
- 4 rotations of one config at once: one 200, whose secret is the config's, and the secret it
  replaced still signing for the overlap; the others are refused.

The long flood (16 threads for 30 s, every route, a neighbour's latency measured beside it)
is bench/fairuse.py."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from devstack.receiver import Receiver
from tests.integration.conftest import run_stack
from tests.support.stack import Client, LocalStack
from webhook_service.signing import verify_standard

pytestmark = pytest.mark.integration

WORKERS = 4  # environments per function at most
RATE, BURST = 5, 10  # the flooder's own rate (set-limits): what the local stack can serve past
FLOOD_THREADS, FLOOD_SECONDS = 8, 8.0
SETTLE_SECONDS = 4.0  # how long to watch for a delivery that must not come


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Path]]:
    name = "devstack-api-workers"
    with run_stack(tmp_path_factory, name, {"DEVSTACK_API_WORKERS": str(WORKERS)}) as started:
        yield started, tmp_path_factory.getbasetemp() / f"{name}.log"


def organisation(stack: LocalStack, name: str) -> Client:
    made = stack.operator("create-organisation", "--name", name)
    key = stack.operator("create-key", "--organisation", made["id"])
    return Client(stack.url, key["token"], made["id"], key["id"])


def environments(log: Path, function: str) -> int:
    """How many environments (worker processes) the stack started for a function."""
    return max((int(n) for n in re.findall(rf"{function}: environment (\d+) started", log.read_text())), default=0)


def test_a_flood_is_held_to_its_rate_across_instances_and_its_neighbour_is_not_refused(
    instances: tuple[LocalStack, Path],
) -> None:
    stack, log = instances
    flooder, neighbour = organisation(stack, "Flooder"), organisation(stack, "Neighbour")
    shown = stack.operator(
        "set-limits", "--organisation", flooder.organisation, "--rate", str(RATE), "--burst", str(BURST)
    )
    assert shown["requests"] == {"per_second": RATE, "burst": BURST}
    # Every environment started and warm (a cold start is not what this measures), then the
    # bucket whole again.
    at_once(WORKERS * 2, lambda: flooder.get("/key"))
    time.sleep(BURST / RATE + 1)
    answers: list[requests.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(FLOOD_THREADS + 1, timeout=30)

    def flood() -> None:
        mine = []
        with requests.Session() as http:
            http.headers["Authorization"] = f"Token {flooder.token}"
            start.wait()
            deadline = time.monotonic() + FLOOD_SECONDS
            while time.monotonic() < deadline:
                mine.append(http.get(f"{stack.url}/key", timeout=30))
        with lock:
            answers.extend(mine)

    threads = [threading.Thread(target=flood) for _ in range(FLOOD_THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    beside = []
    while time.monotonic() < began + FLOOD_SECONDS:
        beside.append(neighbour.get("/configs/webhook").status_code)
        time.sleep(0.2)
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - began

    statuses = Counter(a.status_code for a in answers)
    refused = [a for a in answers if a.status_code == 429]
    admitted = statuses[200]
    expected = BURST + RATE * elapsed
    print(f"flood: {dict(statuses)} in {elapsed:.1f} s; admitted {admitted}, at most {expected:.0f}; beside: {beside}")
    assert set(statuses) == {200, 429}
    assert admitted <= expected + 1  # never past the burst plus the rate, whichever process answered
    assert admitted >= 0.9 * expected
    assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
    assert {a.json()["params"]["requests"] for a in refused} == {f"at most {RATE} a second, bursts of {BURST}"}
    assert all(a.headers["RateLimit-Limit"] == str(BURST) for a in answers)
    assert {a.headers["RateLimit-Remaining"] for a in refused} == {"0"}
    assert set(beside) == {200}
    assert environments(log, "GetKeyFunction") >= WORKERS


# -- answers made at once, in several processes -------------------------------------------------


def at_once(count: int, call: Callable[[], requests.Response]) -> list[requests.Response]:
    start = threading.Barrier(count, timeout=30)

    def one() -> requests.Response:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: one(), range(count)))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_twenty_resends_at_once_are_accepted_once(instances: tuple[LocalStack, Path], receiver: Receiver) -> None:
    stack, _ = instances
    owner = organisation(stack, "Resender")
    resends = ("--resends-per-second", "100", "--resends-burst", "100")  # all twenty reach the write
    stack.operator("set-limits", "--organisation", owner.organisation, *resends)
    config, _ = owner.create_and_wait(receiver.url("/ok/twenty/"))
    assert owner.post("/organisation", json={"webhook_config_default": config["id"]}).status_code == 200
    args = ["publish-event", "--organisation", owner.organisation, "--type", "session", "--action", "completed"]
    event = stack.operator(*args, "--data", json.dumps({"n": 1}))
    assert owner.wait_event(event["id"])["state"] == "delivered"
    before = len(receiver.deliveries_to(f"/ok/twenty/{event['id']}"))

    answers = at_once(20, lambda: owner.post(f"/events/{event['id']}/resend", json={}))

    statuses = Counter(a.status_code for a in answers)
    assert statuses == {200: 1, 400: 19}, statuses
    assert {a.json()["error"] for a in answers if a.status_code == 400} == {"invalid-state"}
    assert owner.wait_event(event["id"])["state"] == "delivered"
    time.sleep(SETTLE_SECONDS)  # a second delivery, were one queued, would have come by now
    assert len(receiver.deliveries_to(f"/ok/twenty/{event['id']}")) == before + 1


def test_four_rotations_at_once_give_one_200_whose_secret_signs(
    instances: tuple[LocalStack, Path], receiver: Receiver
) -> None:
    stack, _ = instances
    owner = organisation(stack, "Rotator")
    config, _ = owner.create_and_wait(receiver.url("/ok/rotating/"))

    answers = at_once(
        4, lambda: owner.post(f"/configs/webhook/{config['id']}/rotate_secret", json={"overlap_seconds": 86400})
    )

    statuses = Counter(a.status_code for a in answers)
    assert statuses == {200: 1, 400: 3}, statuses
    (rotated,) = [a.json() for a in answers if a.status_code == 200]
    refused = [a.json() for a in answers if a.status_code == 400]
    assert {r["params"]["secret"] for r in refused} == {"rotated by another request at once"}
    now = owner.get(f"/configs/webhook/{config['id']}").json()
    assert now["secret"] == rotated["secret"]
    assert now["previous_secret_expires"] == rotated["previous_secret_expires"]  # the old one signs for the day
    # A delivery now verifies with the 200's secret and with the one it replaced.
    test = owner.post(f"/configs/webhook/{config['id']}/test", json={})
    assert test.status_code == 201
    owner.wait_task(test.json()["id"])
    delivery = receiver.deliveries_to("/ok/rotating/")[-1]

    verify_standard(delivery.body, delivery.headers, rotated["secret"])
    verify_standard(delivery.body, delivery.headers, config["secret"])
