"""The local stack (`python -m devstack`, what `make dev` runs) started once for the
integration tests, and the receivers they deliver to (the client and other helpers: tests/support/)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
import trustme

from devstack.__main__ import PORT_IN_USE_EXIT
from devstack.aws import free_port
from devstack.receiver import Receiver
from tests import iamcheck, logscan
from tests.support.receivers import ResettingServer
from tests.support.stack import DELIVERY_TIMEOUT, ROOT, STARTUP_SECONDS, Client, LocalStack, new_caller


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `load` run last: their backlog must not slow the timing-sensitive tests."""
    items.sort(key=lambda item: item.get_closest_marker("load") is not None)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with run_stack(tmp_path_factory, "devstack") as started:
        yield started


@contextlib.contextmanager
def run_stack(
    tmp_path_factory: pytest.TempPathFactory, name: str, extra_env: dict[str, str] | None = None
) -> Iterator[LocalStack]:
    """Start a local stack of its own (`name` names its files), with `extra_env` on top of
    the tests' settings; its log is scanned and its AWS calls checked like the main one's."""
    info_file = tmp_path_factory.mktemp(name) / "info.json"
    log_path = tmp_path_factory.getbasetemp() / f"{name}.log"
    log_file = log_path.open("w")
    banner_file = (tmp_path_factory.getbasetemp() / f"{name}.out").open("w")  # prints the dev token
    logscan.watch_file(log_path)
    calls_path = tmp_path_factory.getbasetemp() / f"{name}-calls.jsonl"
    iamcheck.watch_file(calls_path)
    env = {
        **os.environ,
        "DEV_TOKEN": "rwk_" + secrets.token_urlsafe(32),
        "DELIVERY_TIMEOUT": str(DELIVERY_TIMEOUT),
        "DELIVERY_CONNECT_TIMEOUT": "1",
        "DELIVERY_LOOPBACK_ONLY": "1",  # generated and example receiver URLs never leave this machine
        # No DEVSTACK_SCHEDULE_SECONDS: the sweep runs at the template's rate (every 10 minutes,
        # at most once in a run); test_sweep.py has a stack of its own that sweeps every 2 s.
        "DEVSTACK_CALLS_FILE": str(calls_path),  # every function's AWS calls, for tests/iamcheck.py
        **(extra_env or {}),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    process = None
    try:
        for _ in range(PORT_TRIES):
            # A free port is free when asked, not when the stack binds it: make test's other
            # sessions start stacks and receivers at the same moment. Taken meanwhile: another.
            process = subprocess.Popen(
                [sys.executable, "-m", "devstack", "--port", str(free_port()), "--info-file", str(info_file)],
                cwd=ROOT,
                env=env,
                stdout=banner_file,
                stderr=log_file,
            )
            if _started(process, info_file, log_file, log_path):
                break
        else:
            raise RuntimeError(f"the local stack found its port taken {PORT_TRIES} times; its log: {log_path}")
        yield LocalStack(**json.loads(info_file.read_text()))
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        log_file.close()
        banner_file.close()


PORT_TRIES = 3


def _started(process: subprocess.Popen[bytes], info_file: Path, log_file: IO[str], log_path: Path) -> bool:
    """Whether the stack started; False when its port was taken before it bound it (it said so
    and stopped); RuntimeError for anything else that stopped it, or a start too slow."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while not info_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            log_file.flush()
            tail = log_path.read_text(errors="replace")[-3000:]
            if process.poll() == PORT_IN_USE_EXIT:
                return False
            raise RuntimeError(f"the local stack did not start; its log ({log_path}) ends:\n{tail}")
        time.sleep(0.1)
    return True


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="session")
def untrusted_tls_receiver() -> Iterator[Receiver]:
    """An HTTPS receiver whose certificate no delivery trusts (its CA is made here)."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = Receiver(tls=context)
    yield server
    server.close()


@pytest.fixture(scope="session")
def resetting() -> Iterator[ResettingServer]:
    server = ResettingServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def dev(stack: LocalStack) -> Client:
    """The development organisation's key, created by the local stack itself."""
    return Client(stack.url, stack.token, stack.organisation, stack.key)


@pytest.fixture
def fresh(stack: LocalStack) -> Client:
    """A new organisation with its own key (see `new_caller`)."""
    return new_caller(stack, "Integration test")


@pytest.fixture(scope="session")
def other(stack: LocalStack) -> Client:
    """A second organisation, for tenancy checks."""
    return new_caller(stack, "Other")
