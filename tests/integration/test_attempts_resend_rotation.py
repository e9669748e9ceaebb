"""Attempts, resend and secret rotation on the local stack with real receivers on 127.0.0.1
(docs/design.md §12-§14).

- An event fails against a receiver answering 500, the receiver is fixed, a resend delivers
  it with the same `webhook-id`, and its attempts list shows every try, newest first.
- Two resends at once: one is accepted, one delivery is sent.
- A rotation with an overlap, against two receivers: one keeps the old secret and verifies
  with the official `ricloud.signing.Signature`, the other has the new secret and verifies
  with `standardwebhooks`. Both verify every delivery during the overlap; after it only the
  new secret verifies.

The resend tests run on a stack of their own whose retry waits are scaled down
(`RETRY_DELAY_SCALE`, a local-stack setting the template never sets), so an event's five
attempts take seconds instead of hours. The rotation uses an overlap of 10 s (OVERLAP_SECONDS,
a parameter of the route), not the default of a day.
"""

from __future__ import annotations

import datetime as dt
import http.client
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from ricloud.signing import Signature
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.integration.conftest import run_stack
from tests.support.stack import Client, LocalStack, new_caller

pytestmark = pytest.mark.integration

# 1 min, 10 min, 1 h, 3 h (±10 %) -> 0.006-1.19 s, queued with SQS delays of 1, 1, 1 and 1-2 whole seconds
RETRY_DELAY_SCALE = "0.0001"
# Several times what the three deliveries made during it take (1.5 s on a loaded 2-core
# machine), short enough not to hold the suite; the route accepts any 0..604800 (the default is a day).
OVERLAP_SECONDS = 10


@dataclass
class Seen:
    """One delivery as a receiver saw it, and whether its verifier accepted it."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    reason: str = ""


@dataclass
class VerifyingReceiver:
    """A receiver on 127.0.0.1 that verifies every delivery with `verify` (its owner's
    secret and library) and answers 200 when it verifies, 401 when not; while it has no
    secret yet (the config's first test comes before the API's answer) it accepts. With
    `status` set it answers that instead (a broken receiver). With `mirror` it forwards each
    delivery, bytes and headers unchanged, to another receiver before answering (as a load
    balancer feeding an old and a new deployment side by side)."""

    verify: Callable[[bytes, dict[str, str], str], None]
    secret: str | None = None
    status: int | None = None
    mirror: VerifyingReceiver | None = None
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers.items())
                if receiver.mirror is not None:
                    receiver.mirror.forward(self.path, headers, body)
                status = receiver.take(self.path, headers, body)
                payload = b"verified" if status == 200 else b"no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def take(self, path: str, headers: dict[str, str], body: bytes) -> int:
        verified, reason = True, "no secret yet"
        if self.secret is not None:
            try:
                self.verify(body, headers, self.secret)
                reason = ""
            except Exception as exc:  # each library raises its own
                verified, reason = False, f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.seen.append(Seen(path, headers, body, verified, reason))
        if self.status is not None:
            return self.status
        return 200 if verified else 401

    def forward(self, path: str, headers: dict[str, str], body: bytes) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("POST", path, body=body, headers=headers)
            connection.getresponse().read()
        finally:
            connection.close()

    def deliveries(self, event_id: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path.rstrip("/").endswith(event_id)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ricloud_verifies(body: bytes, headers: dict[str, str], secret: str) -> None:
    """What a receiver using the official client does: one header, one secret."""
    Signature.from_header(headers["Ricloud-Signature"]).verify(body, secret, delta=600)


def standardwebhooks_verifies(body: bytes, headers: dict[str, str], secret: str) -> None:
    Webhook(secret).verify(body, headers)


def accepts(body: bytes, headers: dict[str, str], secret: str) -> None:
    """A receiver that checks nothing (the resend tests look at what arrives)."""


@pytest.fixture(scope="module")
def quick_retries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with run_stack(tmp_path_factory, "devstack-quick-retries", {"RETRY_DELAY_SCALE": RETRY_DELAY_SCALE}) as started:
        yield started


@pytest.fixture
def owner(quick_retries: LocalStack) -> Client:
    return new_caller(quick_retries, "Resend")


@pytest.fixture
def broken_then_fixed() -> Iterator[VerifyingReceiver]:
    receiver = VerifyingReceiver(accepts)
    yield receiver
    receiver.close()


def publish(stack: LocalStack, client: Client, **data: Any) -> dict[str, Any]:
    return stack.publish(client.organisation, data)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not within {timeout} s")


def valid_default(client: Client, url: str) -> dict[str, Any]:
    config, _ = client.create_and_wait(url)
    assert config["state"] == "valid"
    assert client.post("/organisation", json={"webhook_config_default": config["id"]}).status_code == 200
    return config


def failed_event(stack: LocalStack, client: Client, receiver: VerifyingReceiver) -> dict[str, Any]:
    """An event that failed for good: every attempt answered 500."""
    receiver.status = 500
    event = publish(stack, client, n=1)
    failed = client.wait_event(event["id"], timeout=90)
    assert (failed["state"], failed["error"], failed["retries"]) == ("failed", "webhook-response-status", 4)
    return failed


# -- resend --------------------------------------------------------------------------------


def test_a_failed_event_resent_after_the_receiver_is_fixed_is_delivered_with_the_same_id(
    quick_retries: LocalStack, owner: Client, broken_then_fixed: VerifyingReceiver
) -> None:
    receiver = broken_then_fixed
    config = valid_default(owner, receiver.url("/hooks/"))
    failed = failed_event(quick_retries, owner, receiver)
    event_id = failed["id"]

    receiver.status = None  # fixed
    resent = owner.post(f"/events/{event_id}/resend", json={})
    assert resent.status_code == 200, resent.text
    assert (resent.json()["id"], resent.json()["state"], resent.json()["retries"]) == (event_id, "pending", 0)
    delivered = owner.wait_event(event_id, timeout=30)

    assert (delivered["state"], delivered["error"], delivered["retries"]) == ("delivered", None, 0)
    seen = receiver.deliveries(event_id)
    assert len(seen) == 6
    assert {s.headers["webhook-id"] for s in seen} == {event_id}
    page = owner.get(f"/events/{event_id}/attempts", params={"limit": 100}).json()
    codes = [a["status_code"] for a in page["data"]]
    dates = [a["date_created"] for a in page["data"]]
    assert codes == [200, 500, 500, 500, 500, 500]
    assert dates == sorted(dates, reverse=True)
    assert page["total_count"] == 6
    assert {a["url"] for a in page["data"]} == {receiver.url(f"/hooks/{event_id}")}
    assert {a["webhook_config"] for a in page["data"]} == {config["id"]}
    print(f"resend: attempts newest first {codes}; webhook-id {event_id} on all {len(seen)} deliveries")


def test_two_resends_at_once_send_one_delivery(
    quick_retries: LocalStack, owner: Client, broken_then_fixed: VerifyingReceiver
) -> None:
    receiver = broken_then_fixed
    valid_default(owner, receiver.url("/twice/"))
    event = publish(quick_retries, owner, n=2)
    assert owner.wait_event(event["id"])["state"] == "delivered"
    before = len(receiver.deliveries(event["id"]))
    start = threading.Barrier(2, timeout=30)
    answers: list[requests.Response] = []

    def resend() -> None:
        start.wait()
        answers.append(owner.post(f"/events/{event['id']}/resend", json={}))

    threads = [threading.Thread(target=resend) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(a.status_code for a in answers) == [200, 400]
    (refused,) = [a for a in answers if a.status_code == 400]
    assert refused.json()["error"] == "invalid-state"
    assert owner.wait_event(event["id"], timeout=30)["state"] == "delivered"
    quick_retries.wait_until_jobs_done()  # a second job, were one queued, has been run
    assert len(receiver.deliveries(event["id"])) == before + 1
    attempts = owner.get(f"/events/{event['id']}/attempts").json()
    assert [a["status_code"] for a in attempts["data"]] == [200, 200]
    print(f"two resends at once: answers {sorted(a.status_code for a in answers)}, deliveries +1")


def test_resend_refuses_a_pending_or_test_event(quick_retries: LocalStack, owner: Client) -> None:
    receiver = VerifyingReceiver(accepts, status=None)
    try:
        valid_default(owner, receiver.url("/refuse/"))
        test_events = owner.get("/events", params={"type": "webhook_config"}).json()["data"]
        receiver.status = 503
        pending = publish(quick_retries, owner, n=3)

        for event_id in (test_events[0]["id"], pending["id"]):
            response = owner.post(f"/events/{event_id}/resend")
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "invalid-state"
    finally:
        receiver.close()


# -- rotation ------------------------------------------------------------------------------


@pytest.fixture
def old_and_new() -> Iterator[tuple[VerifyingReceiver, VerifyingReceiver]]:
    """The receiver that keeps the old secret (official ricloud verifier), fed every
    delivery first, and the one with the new secret (standardwebhooks), fed a copy."""
    new = VerifyingReceiver(standardwebhooks_verifies)
    old = VerifyingReceiver(ricloud_verifies, mirror=new)
    yield old, new
    old.close()
    new.close()


def test_rotation_both_secrets_verify_during_the_overlap_and_only_the_new_after(
    stack: LocalStack, fresh: Client, old_and_new: tuple[VerifyingReceiver, VerifyingReceiver]
) -> None:
    old, new = old_and_new
    config = valid_default(fresh, old.url("/rotating/"))
    old.secret = config["secret"]

    response = fresh.post(f"/configs/webhook/{config['id']}/rotate_secret", json={"overlap_seconds": OVERLAP_SECONDS})
    assert response.status_code == 200, response.text
    rotated = response.json()
    new.secret = rotated["secret"]
    expires = dt.datetime.fromisoformat(rotated["previous_secret_expires"])
    assert rotated["secret"] != config["secret"]
    assert (rotated["state"], rotated["url"]) == ("valid", config["url"])

    during = []
    for n in range(3):
        event = publish(stack, fresh, n=n)
        assert fresh.wait_event(event["id"])["state"] == "delivered"
        during.append(event["id"])
    left = expires - dt.datetime.now(dt.UTC)
    print(f"rotation: three deliveries took {OVERLAP_SECONDS - left.total_seconds():.1f} s of the overlap")
    assert left > dt.timedelta(seconds=1), "the overlap ended too soon to test"
    for event_id in during:
        (at_old,) = old.deliveries(event_id)
        (at_new,) = new.deliveries(event_id)
        assert at_old.verified, at_old.reason
        assert at_new.verified, at_new.reason
        assert at_old.body == at_new.body
        assert len(at_old.headers["webhook-signature"].split(" ")) == 2
        # a receiver that moved to the new secret can check the ricloud scheme too
        following = Signature.from_header(at_old.headers["Ricloud-Signature-Next"])
        following.verify(at_old.body, rotated["secret"], delta=600)

    wait_for(lambda: dt.datetime.now(dt.UTC) > expires + dt.timedelta(seconds=1), OVERLAP_SECONDS + 5, "overlap end")
    assert fresh.get(f"/configs/webhook/{config['id']}").json()["previous_secret_expires"] is None
    after = publish(stack, fresh, n=9)
    wait_for(lambda: bool(new.deliveries(after["id"])), 20, "the delivery after the overlap")
    (at_old,) = old.deliveries(after["id"])
    (at_new,) = new.deliveries(after["id"])

    assert not at_old.verified
    assert at_new.verified, at_new.reason
    assert "Ricloud-Signature-Next" not in at_old.headers
    assert len(at_old.headers["webhook-signature"].split(" ")) == 1
    Signature.from_header(at_old.headers["Ricloud-Signature"]).verify(at_old.body, rotated["secret"], delta=600)
    with pytest.raises(WebhookVerificationError):
        Webhook(config["secret"]).verify(at_old.body, at_old.headers)
    wait_for(
        lambda: bool(fresh.get(f"/events/{after['id']}/attempts").json()["data"]), 20, "the attempt after the overlap"
    )
    (attempt,) = fresh.get(f"/events/{after['id']}/attempts").json()["data"]
    assert attempt["status_code"] == 401  # the receiver still on the old secret refused it
    print(
        f"rotation ({OVERLAP_SECONDS} s overlap): {len(during)} deliveries during it verified by both;"
        " after it the old secret refused, the new verified"
    )
