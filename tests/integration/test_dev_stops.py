"""`make dev` as a developer runs it, in a terminal of its own: it saves at every stop
whatever its output is connected to (a pipe whose reader has gone, as with `make dev 2>&1 |
tee dev.log` and Ctrl-C, which ends `tee` first), says one line a request by default, stops
cleanly on Ctrl-C (no worker's KeyboardInterrupt traceback), and names the port it cannot have.

Each stack is `make dev` itself (the Makefile's flags included) in a session of its own, so
a Ctrl-C reaches its whole process group as a terminal's does: make, the stack, its workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from devstack.aws import free_port
from devstack.receiver import Receiver
from tests.support.stack import ROOT, STARTUP_SECONDS, Client

pytestmark = pytest.mark.integration

STOP_SECONDS = 60


@dataclass
class Dev:
    process: subprocess.Popen[bytes]
    data: Path
    port: int

    def info(self) -> dict[str, Any]:
        return dict(json.loads((self.data / "dev.json").read_text()))

    def client(self) -> Client:
        info = self.info()
        return Client(info["url"], info["token"], info["organisation"], info["key"])

    def signal_group(self, how: signal.Signals) -> None:
        """What a terminal does: the signal to every process of the foreground job."""
        os.killpg(self.process.pid, how)

    def saved_items(self) -> list[dict[str, Any]]:
        return list(json.loads((self.data / "table.json").read_text())["items"])

    def saved_ids(self) -> set[str]:
        return {item["id"]["S"] for item in self.saved_items() if "id" in item}


def environment(data: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "DEV_TOKEN", "VERBOSE")}
    # No periodic save within a test: what is kept was kept by the save at the stop.
    return {**env, "DEVSTACK_DATA": str(data), "PORT": str(port), "DEVSTACK_SAVE_SECONDS": "3600", **extra}


def start(data: Path, stdout: int | IO[Any], stderr: int | IO[Any], **extra: str) -> Dev:
    port = free_port()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "dev"],
        cwd=ROOT,
        env=environment(data, port, **extra),
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    deadline = time.monotonic() + STARTUP_SECONDS
    while not (data / "dev.json").exists() or not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"make dev did not start (exit {process.poll()})")
        time.sleep(0.1)
    return Dev(process, data, port)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def stopped_at_the_end() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_SECONDS)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGHUP, signal.SIGTERM], ids=lambda s: s.name)
def test_dev_piped_through_a_reader_that_exits_first_still_saves_at_the_stop(
    tmp_path: Path, receiver: Receiver, stopped_at_the_end: list[subprocess.Popen[bytes]], stop: signal.Signals
) -> None:
    # `make dev 2>&1 | tee dev.log`: both outputs into one pipe, whose reader is tee.
    tee = subprocess.Popen(["tee", str(tmp_path / "dev.log")], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert tee.stdin is not None
    dev = start(tmp_path / "data", tee.stdin, subprocess.STDOUT)
    stopped_at_the_end.append(dev.process)
    tee.stdin.close()  # the stack and make hold the pipe's only write ends now
    config = dev.client().create_config(receiver.url("/ok/piped/"))  # made a moment before the stop

    tee.send_signal(signal.SIGINT)  # Ctrl-C ends tee first...
    tee.wait(timeout=10)
    dev.signal_group(stop)  # ...then reaches make and the stack, whose output now goes nowhere

    dev.process.wait(timeout=STOP_SECONDS)
    assert config["id"] in dev.saved_ids()


def test_dev_says_one_line_a_request_and_stops_on_ctrl_c_without_a_traceback(
    tmp_path: Path, receiver: Receiver, stopped_at_the_end: list[subprocess.Popen[bytes]]
) -> None:
    output = tmp_path / "dev.out"
    with output.open("wb") as sink:
        dev = start(tmp_path / "data", sink, subprocess.STDOUT)
        stopped_at_the_end.append(dev.process)
        client = dev.client()
        _, task = client.create_and_wait(receiver.url("/ok/quiet/"))  # requests, and a delivery
        assert task["state"] == "succeeded"
        printed_before_the_stop = output.read_text()

        dev.signal_group(signal.SIGINT)
        # make ends as a Ctrl-C'd program does (it re-raises SIGINT once the stack has stopped)
        assert dev.process.wait(timeout=STOP_SECONDS) in (0, -signal.SIGINT)

    said = output.read_text()
    after = said[len(printed_before_the_stop) :].splitlines()
    assert "Traceback" not in said
    assert "KeyboardInterrupt" not in said
    assert after[-1] == f"saved {len(dev.saved_items())} items to {dev.data.resolve()}"
    served = printed_before_the_stop.split("devstack ready at ", 1)[1].splitlines()[1:]
    assert "devstack.gateway: POST /configs/webhook -> 201 CreateWebhookConfigFunction (" in "\n".join(served)
    assert "devstack.poller: DeliverFunction <- TestQueue: 1 message (" in "\n".join(served)
    # One line a request or an invocation, nothing else: no JSON log or metric line, no botocore.
    assert [line for line in served if not line.startswith(("devstack.gateway: ", "devstack.poller: "))] == []


def test_dev_port_in_use_says_which_and_how_to_choose_another_at_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            ["make", "--no-print-directory", "dev"],
            cwd=ROOT,
            env=environment(tmp_path / "data", port),
            capture_output=True,
            text=True,
            timeout=STOP_SECONDS,
            check=False,
        )

    assert done.returncode != 0  # make's own status; the stack's is PORT_IN_USE_EXIT
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr
    assert "PORT=" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < STARTUP_SECONDS
