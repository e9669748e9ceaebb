"""`make dev` keeps what was made across restarts (`python -m devstack --data-dir`): real
local stacks, started and stopped as a developer does, over real HTTP. Configs, tasks,
events, the organisation's default and the development key survive a stop (SIGTERM, or
SIGKILL after a periodic save); a test that was in flight at the stop is delivered after
the start; `--reset` starts afresh; two stacks never share one folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack.aws import free_port
from devstack.receiver import Receiver
from tests import logscan
from tests.support.stack import ROOT, STARTUP_SECONDS, Client

pytestmark = pytest.mark.integration


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    info: dict[str, Any]

    def client(self) -> Client:
        return Client(self.info["url"], self.info["token"], self.info["organisation"], self.info["key"])

    def stop(self, how: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(how)
        return self.process.wait(timeout=60)


@dataclass(frozen=True)
class Stacks:
    """Starts a local stack on the data folder `data` at each call."""

    start: Callable[..., Running]
    data: Path

    def __call__(self, *extra: str, **env: str) -> Running:
        return self.start(*extra, **env)


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[Stacks]:
    """Starts local stacks on one data folder; whatever is still running at the end is stopped."""
    started: list[Running] = []
    data = tmp_path / "data"

    def start(*extra: str, **env: str) -> Running:
        n = len(started)
        info_file = tmp_path / f"info-{n}.json"
        log_path = tmp_path / f"devstack-{n}.log"
        logscan.watch_file(log_path)
        environment = {
            **os.environ,
            "DELIVERY_LOOPBACK_ONLY": "1",
            "DELIVERY_TIMEOUT": "5",
            **env,
        }
        for name in ("AWS_ENDPOINT_URL", "DEV_TOKEN", "DEVSTACK_DATA"):
            environment.pop(name, None)
        with log_path.open("w") as log, (tmp_path / f"devstack-{n}.out").open("w") as out:
            command = [sys.executable, "-m", "devstack", "--port", str(free_port()), "--info-file", str(info_file)]
            process = subprocess.Popen(
                [*command, "--data-dir", str(data), *extra],
                cwd=ROOT,
                env=environment,
                stdout=out,
                stderr=log,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while not info_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the local stack did not start: {log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        running = Running(process, json.loads(info_file.read_text()))
        started.append(running)
        return running

    yield Stacks(start, data)
    for running in started:
        if running.process.poll() is None:
            running.stop(signal.SIGKILL)


def operator(data: Path, *args: str) -> dict[str, Any]:
    """The operator command line as the banner gives it: no stack, table, queue or endpoint
    named; it reads them from the folder make dev saved them in. The environment still holds
    an endpoint exported for an earlier run (on a port where nothing answers now)."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("TABLE_NAME", "QUEUE_URL")},
        "DEVSTACK_DATA": str(data),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "webhook_service", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def saved_items(data: Path) -> list[dict[str, Any]]:
    snapshot = data / "table.json"
    return list(json.loads(snapshot.read_text())["items"]) if snapshot.exists() else []


def test_restart_keeps_configs_tasks_default_events_and_the_development_key(stacks: Stacks, receiver: Receiver) -> None:
    first = stacks()
    dev = first.client()
    config, _ = dev.create_and_wait(receiver.url("/ok/kept/"))
    assert config["state"] == "valid"
    assert dev.post("/organisation", json={"webhook_config_default": config["id"]}).status_code == 200
    published = operator(
        stacks.data, "publish-event", "--organisation", dev.organisation, "--type", "session", "--action", "completed"
    )
    event = dev.wait_event(published["id"])
    assert event["state"] == "delivered"
    tasks = dev.tasks_of(config["id"])

    assert first.stop() == 0
    second = stacks()  # no DEV_TOKEN: the saved token is the development key's again
    again = second.client()

    assert (second.info["token"], second.info["key"]) == (first.info["token"], first.info["key"])
    assert again.get(f"/configs/webhook/{config['id']}").json() == config
    assert again.tasks_of(config["id"]) == tasks
    assert again.get("/organisation").json()["webhook_config_default"] == config["id"]
    assert again.get(f"/events/{event['id']}").json() == event
    task = again.post(f"/configs/webhook/{config['id']}/test").json()
    assert again.wait_task(task["id"])["state"] == "succeeded"  # the kept config still delivers


def test_kill_mid_delivery_after_a_periodic_save_delivers_the_test_after_the_start(
    stacks: Stacks, receiver: Receiver
) -> None:
    first = stacks(DEVSTACK_SAVE_SECONDS="0.5")
    config = first.client().create_config(receiver.url("/hold/killed/"))
    receiver.wait_for("/hold/killed/", timeout=20)  # its test is at the receiver, unanswered
    deadline = time.monotonic() + 30
    while not any(
        i["resource"]["S"] == "task" and i["target"]["S"] == config["id"] and i["state"]["S"] == "processing"
        for i in saved_items(stacks.data)
        if "target" in i
    ):
        assert time.monotonic() < deadline, "no periodic save holds the test in flight"
        time.sleep(0.2)
    refused = subprocess.run(
        [sys.executable, "-m", "devstack", "--port", "0", "--data-dir", str(stacks.data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "another local stack" in refused.stderr

    first.stop(signal.SIGKILL)
    receiver.release("killed")
    second = stacks()
    again = second.client()

    (task,) = again.tasks_of(config["id"])
    assert again.wait_task(task["id"], timeout=30)["state"] == "succeeded"  # queued again at the start
    assert again.get(f"/configs/webhook/{config['id']}").json()["state"] == "valid"
    sent = [d.headers["webhook-id"] for d in receiver.deliveries_to("/hold/killed/")]
    assert len(sent) == 2
    assert len(set(sent)) == 1  # the same test event both times: a receiver can drop the copy
    assert second.stop() == 0

    third = stacks("--reset")
    assert third.info["token"] != first.info["token"]
    assert third.client().get(f"/configs/webhook/{config['id']}").status_code == 404
