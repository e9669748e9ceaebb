"""The local stack's API functions in worker processes (devstack.apiworkers): each request at
once in an environment of its own, up to the per-function limit, warm ones reused, a failure
raised for the gateway to answer 500. The function is a small handler written for each test,
run in real worker processes; every wait is bounded."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack.apiworkers import FunctionFailedError, WorkerFunctions
from devstack.template import Function

HANDLER = """
import os, pathlib, time

def handler(event, context):
    folder = pathlib.Path(event["folder"])
    (folder / f"{event['name']}.{os.getpid()}").write_text("")
    for _ in range(600):  # until the test releases it, at most 30 s
        if not event.get("hold") or (folder / "release").exists():
            break
        time.sleep(0.05)
    if event.get("raise"):
        raise RuntimeError("the handler failed")
    return {"statusCode": 200, "body": str(os.getpid())}
"""


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[tuple[WorkerFunctions, Function]]:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(HANDLER)
    function = Function(
        logical_id="FakeFunction", code_dir=tmp_path / "code", handler="app.handler", environment={}, timeout_seconds=30
    )
    functions = WorkerFunctions(per_function=3)
    yield functions, function
    (tmp_path / "release").write_text("")
    functions.close()


def event(folder: Path, name: str, **extra: Any) -> dict[str, Any]:
    return {"folder": str(folder), "name": name, **extra}


def running(folder: Path) -> set[int]:
    return {int(path.suffix[1:]) for path in folder.glob("held*.*")}


def test_requests_at_once_run_in_environments_of_their_own_up_to_the_limit(
    pool: tuple[WorkerFunctions, Function], tmp_path: Path
) -> None:
    functions, function = pool
    with ThreadPoolExecutor(max_workers=4) as threads:
        answers = [threads.submit(functions.invoke, function, event(tmp_path, f"held{n}", hold=True)) for n in range(4)]
        deadline = time.monotonic() + 30
        while len(running(tmp_path)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the fourth, were it not held back, would have started by now
        at_once = len(list(tmp_path.glob("held*.*")))
        (tmp_path / "release").write_text("")
        pids = {int(answer.result(timeout=30)["body"]) for answer in answers}

    assert at_once == 3
    assert len(pids) == 3
    assert pids.isdisjoint({os.getpid()})
    assert functions.started == {"FakeFunction": 3}


def test_a_warm_environment_is_reused(pool: tuple[WorkerFunctions, Function], tmp_path: Path) -> None:
    functions, function = pool

    pids = {functions.invoke(function, event(tmp_path, f"one{n}"))["body"] for n in range(3)}

    assert len(pids) == 1
    assert functions.started == {"FakeFunction": 1}


def test_a_function_that_raises_is_a_failure_the_gateway_answers(
    pool: tuple[WorkerFunctions, Function], tmp_path: Path
) -> None:
    functions, function = pool

    with pytest.raises(FunctionFailedError, match="error"):
        functions.invoke(function, event(tmp_path, "boom", **{"raise": True}))
    assert functions.invoke(function, event(tmp_path, "after"))["statusCode"] == 200


def test_the_limit_is_per_function(pool: tuple[WorkerFunctions, Function], tmp_path: Path) -> None:
    functions, function = pool
    other = Function("OtherFunction", function.code_dir, "app.handler", {}, timeout_seconds=30)
    done = threading.Event()

    def hold() -> None:
        functions.invoke(function, event(tmp_path, "held", hold=True))
        done.set()

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()

    assert functions.invoke(other, event(tmp_path, "free"))["statusCode"] == 200
    (tmp_path / "release").write_text("")
    assert done.wait(30)
