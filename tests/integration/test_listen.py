"""`make listen` (`python -m devstack.listen`) over real sockets: a valid delivery is reported
verified and a forged one is not, both answered 200; against the local stack, `--create`
makes a config that points at the listener and its signed test arrives verified;
`--config` finds the secret and the port through the API; Ctrl-C (SIGINT) stops it."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.listen import MAX_BODY, Listener
from tests import logscan
from tests.support.stack import ROOT, Client, LocalStack
from webhook_service.domain.configs import generate_secret
from webhook_service.signing import signature_headers

pytestmark = pytest.mark.integration
EVENT_ID = "0b5b7f64-3f4a-4b8e-9d1c-2f1f6b7a9c01"
BODY = json.dumps({"id": EVENT_ID, "type": "session", "action": "completed", "data": {}}, separators=(",", ":"))


@pytest.fixture
def listener() -> Iterator[tuple[Listener, io.StringIO]]:
    out = io.StringIO()
    server = Listener(0, out)
    server.set_secret(SECRET)
    server.start()
    yield server, out
    server.close()


SECRET = generate_secret()


def test_listener_valid_delivery_is_verified_and_a_forged_one_is_not_both_answered_200(
    listener: tuple[Listener, io.StringIO],
) -> None:
    server, out = listener
    valid = signature_headers(SECRET, EVENT_ID, BODY.encode())
    forged = signature_headers(generate_secret(), EVENT_ID, BODY.encode())

    first = requests.post(server.url + EVENT_ID, data=BODY, headers=valid, timeout=10)
    second = requests.post(server.url + EVENT_ID, data=BODY, headers=forged, timeout=10)

    assert (first.status_code, second.status_code) == (200, 200)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith(f"  session.completed  {EVENT_ID}  verified  {len(BODY)} B")
    assert "Z  NOT verified (Ricloud-Signature: " in lines[1]
    assert EVENT_ID not in lines[1]  # an unverified body's fields are whatever its sender wrote
    assert lines[2].startswith("note: this listener checks signatures with the secrets it was given only")
    assert [c.verified for c in server.seen] == [True, False]


def test_listener_body_over_the_limit_answers_413_and_prints_nothing(listener: tuple[Listener, io.StringIO]) -> None:
    server, out = listener

    response = requests.post(server.url, data=b"x" * (1024 * 1024 + 1), timeout=10)

    assert response.status_code == 413
    assert out.getvalue() == ""


class Process:
    """`python -m devstack.listen ...` (make listen), its output read line by line."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        output = tmp_path / f"listen-{time.monotonic_ns()}.out"
        logscan.watch_file(output)  # what it prints is scanned for secrets and tokens too
        self._copy = output.open("w")
        self.lines: queue.Queue[str] = queue.Queue()
        self.printed: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack.listen", *args],
            cwd=ROOT,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("RICLOUD_")},
                "DEVSTACK_DATA": str(tmp_path / "none"),  # nothing saved by make dev
                **(env or {}),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._copy.write(line)
            self._copy.flush()
            self.lines.put(line.rstrip("\n"))
            self.printed.append(line)

    def wait_line(self, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if needle in line:
                return line
        raise TimeoutError(f"listen printed no line with {needle!r}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)  # Ctrl-C
        code = self.process.wait(timeout=20)
        self._copy.close()
        return code


def test_listen_create_receives_the_new_config_test_verified_then_config_reads_secret_and_port(
    stack: LocalStack, fresh: Client, tmp_path: Path
) -> None:
    created = Process(tmp_path, "--create", "--api", stack.url, "--token", fresh.token)
    try:
        line = created.wait_line("created config ")
        config_id = line.split()[2]
        test_line = created.wait_line("webhook_config.test")
        assert "  verified  " in test_line
        created.wait_line(f"config {config_id} is valid")  # said once its first test has ended
        (task,) = fresh.tasks_of(config_id)
        assert fresh.wait_task(task["id"])["state"] == "succeeded"  # the listener answered 200
        config = fresh.get(f"/configs/webhook/{config_id}").json()
        assert config["state"] == "valid"
        assert config["url"].startswith("http://127.0.0.1:")
    finally:
        assert created.stop() == 0
    assert created.wait_line("stopped after 1 deliveries")
    assert config["secret"] not in "".join(created.printed)

    env = {"RICLOUD_URL": stack.url + "/", "RICLOUD_TOKEN": fresh.token}
    listening = Process(tmp_path, "--config", config_id, env=env)  # no --port: the config's own
    try:
        listening.wait_line(f"listening on {config['url']} for config {config_id}")
        task = fresh.post(f"/configs/webhook/{config_id}/test").json()
        assert fresh.wait_task(task["id"])["state"] == "succeeded"
        assert "  verified  " in listening.wait_line("webhook_config.test")
    finally:
        assert listening.stop() == 0


def test_listen_no_token_exits_1_saying_where_to_put_one(tmp_path: Path) -> None:
    refused = Process(tmp_path, "--create")

    assert refused.process.wait(timeout=30) == 1
    assert "--token" in refused.wait_line("listen: no token")


def test_listen_unreachable_api_exits_1_saying_so(tmp_path: Path) -> None:
    from devstack.aws import free_port

    failed = Process(tmp_path, "--create", "--api", f"http://127.0.0.1:{free_port()}", "--token", "rwk_x")

    assert failed.process.wait(timeout=30) == 1
    assert "cannot reach the API" in failed.wait_line("listen: ")


def test_listen_token_the_api_refuses_exits_1_with_its_answer(tmp_path: Path, stack: LocalStack) -> None:
    refused = Process(tmp_path, "--create", "--api", stack.url, "--token", "rwk_not-a-key")

    assert refused.process.wait(timeout=30) == 1
    assert "answered 401" in refused.wait_line("listen: ")


def raw_post(port: int, head: str, body: bytes = b"", keep_sending: bool = False) -> bytes:
    """A POST written by hand (headers a client library would refuse to send); returns what
    the listener answered within 5 s. `keep_sending` goes on writing after the body, as a
    sender that lied about its length would."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode() + body)
        if keep_sending:
            for _ in range(20):
                try:
                    conn.sendall(b"x" * 4096)
                except OSError:
                    break  # the listener has answered and closed: what a bounded read does
        try:
            return conn.recv(4096)
        except TimeoutError:
            return b"(no answer within 5 s)"


@pytest.mark.parametrize(
    ("content_length", "status"),
    [
        ("-1", b"400"),  # once read as "everything until the peer closes"
        ("abc", b"400"),
        (str(100 * 1024), b"413"),  # more than any delivery of the service (an event of at most 64 KiB)
        (str(MAX_BODY + 1), b"413"),
        ("9" * 40, b"413"),
    ],
)
def test_listener_content_length_negative_malformed_or_over_the_largest_delivery_is_refused_unread(
    listener: tuple[Listener, io.StringIO], content_length: str, status: bytes
) -> None:
    server, out = listener

    answer = raw_post(server.port, f"Content-Length: {content_length}\r\n", keep_sending=True)

    assert answer.split(b" ")[1:2] == [status], answer
    assert out.getvalue() == ""


def test_listener_post_without_a_length_is_refused_411(listener: tuple[Listener, io.StringIO]) -> None:
    server, out = listener

    answer = raw_post(server.port, "Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")

    assert answer.split(b" ")[1:2] == [b"411"], answer
    assert out.getvalue() == ""


FORGED_TYPE = "\x1b[2K\rsession"  # erases the line, then writes its own
FORGED = json.dumps(
    {"id": "\x1b]52;c;aGVsbG8=\x07" + EVENT_ID, "type": FORGED_TYPE, "action": "completed\u202e", "data": {}}
).encode()


def test_listener_unverified_delivery_prints_none_of_its_fields_and_no_control_character(
    listener: tuple[Listener, io.StringIO],
) -> None:
    server, out = listener
    forged = signature_headers(generate_secret(), "\x1b[8m" + EVENT_ID, FORGED)  # another secret, a hiding id

    answer = raw_post(
        server.port,
        "".join(f"{name}: {value}\r\n" for name, value in forged.items()) + f"Content-Length: {len(FORGED)}\r\n",
        FORGED,
    )

    assert answer.split(b" ")[1:2] == [b"200"], answer
    printed = out.getvalue()
    assert "NOT verified" in printed
    assert "session" not in printed
    assert "completed" not in printed
    assert EVENT_ID not in printed
    assert not [c for c in printed if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u202e\u2028")]
