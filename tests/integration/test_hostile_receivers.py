"""Hostile receivers on real sockets (127.0.0.1): each one ends in its documented outcome
(docs/reliability.md, "Hostile receivers"), and no attempt outlasts the hard deadline.

The sender is tested directly with its production settings (15 s in all, 5 s to connect,
5 s for the DNS lookup): every case runs at once, one thread each, so the suite costs one
deadline, and the cases that only a deadline ends (trickles, silence) are cut by the real
15 s one, not a shortened stand-in. Then the deliver path on the local stack (whose
deadline is DELIVERY_TIMEOUT, 2 s) records the same receivers' answers.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.receivers import RETRY_AFTER, HostileReceiver, ResettingServer
from tests.support.stack import DELIVERY_TIMEOUT, Client, LocalStack
from webhook_service.domain.delivery import DeliveryResult
from webhook_service.domain.retries import RETRY_DELAYS, RETRY_JITTER
from webhook_service.httpcodes import delay_for_answer, parse_retry_after
from webhook_service.sender import Sender
from webhook_service.storage.codec import marshal
from webhook_service.storage.keys import item_key

pytestmark = pytest.mark.integration

DEADLINE = 15.0  # the Sender's default: what Lambda runs
SLACK = 0.5  # what an attempt may take past its deadline, on a loaded machine
DNS_BOUND = 5.0
SCHEDULE_FIRST = RETRY_DELAYS[0]
CAP = RETRY_DELAYS[-1]


@dataclass
class Case:
    """One hostile receiver: where to send, and what must come of it."""

    path: str
    error: str | None
    status: int | None
    seconds: tuple[float, float] = (0.0, DEADLINE + SLACK)  # the attempt's wall-clock bounds
    excerpt: Callable[[str], bool] = field(default=lambda excerpt: len(excerpt) <= 512)
    retry_delay: dt.timedelta | None = None  # after a failed first attempt
    scheme: str = "http"


CUT = (DEADLINE - SLACK, DEADLINE + SLACK)
CASES: dict[str, Case] = {
    "headers trickled": Case("/trickle-headers/", "webhook-timeout", None, CUT),
    "body trickled after a 200": Case(
        "/trickle-body/", None, 200, CUT, lambda e: e.startswith("begin:.") and set(e[6:]) == {"."}
    ),
    "no answer": Case("/silent/", "webhook-timeout", None, CUT),
    "TLS handshake never answered": Case("/silent/tls/", "webhook-timeout", None, CUT, scheme="https"),
    "30 MB body": Case("/huge/", None, 200, excerpt=lambda e: e == "x" * 512),
    # Kept as the bytes came, made printable: gzip's magic 0x1f is a control, escaped.
    "gzip bomb": Case("/gzip-bomb/", None, 200, excerpt=lambda e: e.startswith("\\u001f") and 500 <= len(e) <= 512),
    "3xx": Case("/status/302/", "webhook-response-status", 302),
    "410": Case("/status/410/", "webhook-response-status", 410),
    "garbage status line": Case("/garbage/", "webhook-connection-failed", None),
    "70 KiB header line": Case("/long-header/", "webhook-connection-failed", None),
    "150 header lines": Case("/many-headers/", "webhook-connection-failed", None),
    "header values in no encoding": Case("/binary-headers/", None, 200, excerpt=lambda e: e == "thanks"),
    "broken chunked body after a 200": Case("/bad-chunks/", None, 200, excerpt=lambda e: e == "hello"),
    "terminal and bidi controls in the body": Case(
        "/controls/",
        None,
        200,
        excerpt=lambda e: (
            e == "ok\\u0000\\u0007\\u001b[2J\\u001b]52;c;aGk=\\u0007\\u009b31m\\u0085\\u2028\\u202eevil\\u2066"
        ),
    ),
    "status 999": Case("/status/999/", "webhook-connection-failed", None, excerpt=lambda e: e.endswith("status 999")),
    "Retry-After huge": Case("/status/503/retry-after/huge/", "webhook-response-status", 503, retry_delay=CAP),
    "Retry-After 5,000 digits": Case(
        "/status/503/retry-after/digits/", "webhook-response-status", 503, retry_delay=SCHEDULE_FIRST
    ),
    "Retry-After negative": Case(
        "/status/503/retry-after/negative/", "webhook-response-status", 503, retry_delay=SCHEDULE_FIRST
    ),
    "Retry-After HTTP-date far ahead": Case(
        "/status/503/retry-after/far-date/", "webhook-response-status", 503, retry_delay=CAP
    ),
    "Retry-After of 5,000 characters": Case(
        "/status/503/retry-after/long/", "webhook-response-status", 503, retry_delay=SCHEDULE_FIRST
    ),
    "Retry-After in no encoding": Case(
        "/status/503/retry-after/binary/", "webhook-response-status", 503, retry_delay=SCHEDULE_FIRST
    ),
    "reset": Case("/reset/", "webhook-connection-failed", None),
    "DNS that never answers": Case(
        "/ok/dns/", "webhook-connection-failed", None, (DNS_BOUND - SLACK, DNS_BOUND + SLACK)
    ),
}


@dataclass
class Outcome:
    result: DeliveryResult | None
    seconds: float
    raised: BaseException | None = None


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileReceiver]:
    server = HostileReceiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def outcomes(hostile: HostileReceiver) -> Iterator[dict[str, Outcome]]:
    """Every case at once, each on its own thread, through one production Sender (the DNS
    case through one whose resolver never answers)."""
    resetting = ResettingServer()
    dns_hangs = threading.Event()

    def hanging_resolver(host: str, port: int) -> list[str]:
        dns_hangs.wait(60)
        return ["127.0.0.1"]

    shared = Sender(allow_private=True)
    dns = Sender(allow_private=True, resolver=hanging_resolver)
    found: dict[str, Outcome] = {}

    def run(name: str, case: Case) -> None:
        if name == "reset":
            url, sender = resetting.url("/hooks/"), shared
        elif name == "DNS that never answers":
            url, sender = f"http://receiver.test:{hostile.port}{case.path}", dns
        else:
            url, sender = hostile.url(case.path, case.scheme), shared
        started = time.monotonic()
        try:
            result = sender.post(url, b'{"id":"e1"}', {"webhook-id": "e1"})
            found[name] = Outcome(result, time.monotonic() - started)
        except BaseException as exc:  # a raise is the finding, recorded for the test
            found[name] = Outcome(None, time.monotonic() - started, exc)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in CASES.items()]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=DEADLINE * 3)
        assert not [t for t in threads if t.is_alive()], "an attempt is still running long after its deadline"
        yield found
    finally:
        dns_hangs.set()
        resetting.close()


@pytest.mark.parametrize("name", list(CASES))
def test_sender_hostile_receiver_ends_in_its_documented_outcome(name: str, outcomes: dict[str, Outcome]) -> None:
    case, outcome = CASES[name], outcomes[name]

    assert outcome.raised is None, f"the sender raised {outcome.raised!r}"
    assert outcome.result is not None
    result = outcome.result
    assert (result.error, result.status_code) == (case.error, case.status), result
    low, high = case.seconds
    assert low <= outcome.seconds <= high, f"took {outcome.seconds:.2f} s, not {low}-{high}"
    assert result.duration_ms <= (DEADLINE + SLACK) * 1000
    assert case.excerpt(result.response_excerpt), result.response_excerpt[:200]
    if case.retry_delay is not None:
        now = dt.datetime.now(dt.UTC)
        delay = delay_for_answer(1, result.status_code, parse_retry_after(result.retry_after, now), jitter=0.0)
        assert delay == case.retry_delay


def test_receiver_never_answers_a_tls_handshake_whatever_its_bytes(hostile: HostileReceiver) -> None:
    """The `https` case above needs a handshake left unanswered: a ClientHello's random
    bytes can hold a line break pair, which read as HTTP would end a request and get a 200
    (this made the case fail about one run in a few hundred)."""
    hello = b"\x16\x03\x01\x00\x40" + b"GET / HTTP/1.1\r\n\r\n" + bytes(range(40))
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=5) as conn:
        conn.sendall(hello)
        conn.settimeout(1.0)
        with pytest.raises(TimeoutError):
            conn.recv(1)


def test_sender_asks_for_an_uncompressed_answer(hostile: HostileReceiver, outcomes: dict[str, Outcome]) -> None:
    (request,) = hostile.requests_to("/gzip-bomb/")

    assert request.headers["accept-encoding"] == "identity"


def test_sender_refused_target_excerpt_does_not_say_what_the_name_resolved_to() -> None:
    sender = Sender(allow_private=False, resolver=lambda host, port: ["10.20.30.40"])

    result = sender.post("https://internal.example/hooks", b"{}", {})

    assert result.error == "webhook-blocked-target"
    assert result.response_excerpt == "the receiver's address is not allowed"


def test_sender_refuses_plain_http_before_any_lookup() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("a refused scheme needs no lookup (it would tell which names exist)")

    result = Sender(allow_private=False, resolver=resolver).post("http://internal.example/", b"{}", {})

    assert (result.error, result.response_excerpt) == (
        "webhook-blocked-target",
        "the receiver's address is not allowed",
    )


def test_sender_reused_connection_closed_by_the_receiver_is_retried_once_on_a_new_one(
    hostile: HostileReceiver,
) -> None:
    sender = Sender(allow_private=True)

    first = sender.post(hostile.url("/close-second/a"), b"{}", {})
    second = sender.post(hostile.url("/close-second/b"), b"{}", {})

    assert (first.error, second.error) == (None, None)
    assert [r.path for r in hostile.requests_to("/close-second/")] == [
        "/close-second/a",
        "/close-second/b",
        "/close-second/b",
    ]


def test_sender_keeps_one_connection_for_sequential_deliveries(hostile: HostileReceiver) -> None:
    sender = Sender(allow_private=True)
    before = hostile.connections

    results = [sender.post(hostile.url(f"/ok/reuse/{n}"), b"{}", {}) for n in range(5)]

    assert [r.error for r in results] == [None] * 5
    assert hostile.connections - before == 1


# -- the deliver path on the local stack (DELIVERY_TIMEOUT = 2 s) ------------------------------


def stack_seconds(task: dict[str, Any]) -> float:
    started = dt.datetime.fromisoformat(task["date_started"])
    ended = dt.datetime.fromisoformat(task["date_completed"])
    return (ended - started).total_seconds()


def test_stack_test_of_a_receiver_trickling_headers_is_cut_at_the_deadline(
    dev: Client, hostile: HostileReceiver
) -> None:
    config, task = dev.create_and_wait(hostile.url("/trickle-headers/stack/"))

    assert (task["state"], task["error"], config["state"]) == ("failed", "webhook-timeout", "invalid")
    assert task["result"]["status_code"] is None
    assert DELIVERY_TIMEOUT * 1000 <= task["result"]["duration_ms"] <= (DELIVERY_TIMEOUT + SLACK) * 1000
    assert stack_seconds(task) <= DELIVERY_TIMEOUT + 2 * SLACK


def test_stack_test_of_a_receiver_trickling_its_body_after_a_200_succeeds_with_what_arrived(
    dev: Client, hostile: HostileReceiver
) -> None:
    config, task = dev.create_and_wait(hostile.url("/trickle-body/stack/"))

    assert (task["state"], task["error"], config["state"]) == ("succeeded", None, "valid")
    assert task["result"]["status_code"] == 200
    assert task["result"]["response_excerpt"].startswith("begin:")
    assert DELIVERY_TIMEOUT * 1000 <= task["result"]["duration_ms"] <= (DELIVERY_TIMEOUT + SLACK) * 1000
    assert stack_seconds(task) <= DELIVERY_TIMEOUT + 2 * SLACK


def published_event(stack: LocalStack, client: Client, receiver_path: str, hostile: HostileReceiver) -> dict[str, Any]:
    """An event of `client`'s organisation, routed to a config whose test passed and whose
    event deliveries get the hostile answer of `receiver_path`; waits for its first attempt."""
    config, task = client.create_and_wait(hostile.url(f"/after-test{receiver_path}"))
    assert task["state"] == "succeeded", task
    assert client.post("/organisation", json={"webhook_config_default": config["id"]}).status_code == 200
    event = stack.publish(client.organisation)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        current: dict[str, Any] = client.get(f"/events/{event['id']}").json()
        if current["error"] is not None or current["state"] != "pending":
            return current
        time.sleep(0.2)
    raise AssertionError(f"event {event['id']} was never recorded: its attempt was stranded")


def next_attempt_after_attempt(stack: LocalStack, client: Client, event_id: str) -> float:
    """Seconds from the event's one attempt to its next attempt's due time: the attempt's
    `date_created` is the instant the retry was planned from (one `now` for both), so this
    does not depend on when the test reads it."""
    item = stack.aws_client("dynamodb").get_item(
        TableName=stack.table, Key=marshal(item_key(client.organisation, "event", event_id))
    )["Item"]
    (attempt,) = client.get(f"/events/{event_id}/attempts").json()["data"]
    planned_at = dt.datetime.fromisoformat(attempt["date_created"])
    return int(item["next_attempt_at"]["N"]) - planned_at.timestamp()


def due_bounds(delay: dt.timedelta, jittered: bool = True) -> tuple[float, float]:
    """Where a next attempt `delay` after its attempt can fall, as [low, high): the schedule
    moves each delay by up to RETRY_JITTER either way (a receiver's capped Retry-After is not
    jittered), and next_attempt_at is stored as whole seconds rounded up, up to 1 s later."""
    spread = RETRY_JITTER if jittered else 0.0
    return delay.total_seconds() * (1 - spread), delay.total_seconds() * (1 + spread) + 1


@pytest.mark.parametrize(
    ("name", "delay"),
    [
        ("huge", CAP),
        ("far-date", CAP),
        ("negative", SCHEDULE_FIRST),
        ("long", SCHEDULE_FIRST),
        ("digits", SCHEDULE_FIRST),
        ("binary", SCHEDULE_FIRST),
    ],
)
def test_stack_event_answered_503_with_a_hostile_retry_after_is_recorded_and_rescheduled(
    stack: LocalStack, fresh: Client, hostile: HostileReceiver, name: str, delay: dt.timedelta
) -> None:
    assert name in RETRY_AFTER
    event = published_event(stack, fresh, f"/status/503/retry-after/{name}/", hostile)

    assert (event["state"], event["error"], event["retries"]) == ("pending", "webhook-response-status", 0)
    low, high = due_bounds(delay, jittered=delay != CAP)  # the cap is the receiver's wish, capped: no jitter
    assert low <= next_attempt_after_attempt(stack, fresh, event["id"]) < high


def test_stack_event_to_a_receiver_trickling_headers_is_recorded_as_a_timeout(
    stack: LocalStack, fresh: Client, hostile: HostileReceiver
) -> None:
    started = time.monotonic()
    event = published_event(stack, fresh, "/trickle-headers/event/", hostile)

    assert (event["state"], event["error"], event["retries"]) == ("pending", "webhook-timeout", 0)
    low, high = due_bounds(SCHEDULE_FIRST)
    assert low <= next_attempt_after_attempt(stack, fresh, event["id"]) < high
    assert time.monotonic() - started < 20
