"""Lambda's execution environments, locally: a worker process per concurrent invocation.

Lambda gives every concurrent invocation an environment of its own, and the functions rely on
it: Powertools' Logger keys (the correlation id) and its Metrics buffer are module-level
state, which two invocations running in one process would mix. So an event source that runs
invocations at the same time runs each in a `Worker`: a process that imports the function
once, runs one invocation at a time, and is reused while it is warm. An invocation that
outlives the function's Timeout has its worker killed, as Lambda stops the environment.

Workers are forked from a multiprocessing fork server that imported the shared layer and
loaded botocore's models of the functions' AWS clients once (`PRELOAD`, `devstack.warm`), so a
new worker costs about 10 ms here instead of a cold import of half a second and 250 ms of
models, which on Lambda each environment pays on CPU of its own; the function's own module and
its AWS clients are still made in the worker, on first use. Each worker takes the environment
variables of the moment it starts and writes everything it prints to standard error
(standard output is the local stack's banner).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import traceback
import uuid
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext
from typing import Any

from devstack.runtime import Functions, LambdaContext
from devstack.template import Function

log = logging.getLogger("devstack.workers")

PRELOAD = ("webhook_service.consumer", "devstack.warm")  # the layer (Powertools, http.client), the AWS models
REPLY_GRACE_SECONDS = 0.5  # passing the event and the answer between processes, beyond the Timeout
STOP_SECONDS = 5.0

_lock = threading.Lock()
_context: ForkServerContext | None = None


def _fork_server() -> ForkServerContext:
    global _context
    with _lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(PRELOAD))
            _context = context
        return _context


@dataclass(frozen=True)
class Invocation:
    """How an invocation ended: `ok` (with the handler's answer), `error` (the handler
    raised), `timeout` (it outlived the function's Timeout and its worker was killed) or
    `crashed` (the worker died)."""

    status: str
    result: Any = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Worker:
    """One execution environment of one function: a process, one invocation at a time."""

    def __init__(self, function: Function) -> None:
        self.function = function
        context = _fork_server()
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve,
            args=(function, child, dict(os.environ)),
            name=f"lambda-{function.logical_id}",
            daemon=True,
        )
        self.process.start()
        child.close()

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def invoke(self, event: dict[str, Any]) -> Invocation:
        """Run the function once; kill the worker if it does not answer within its Timeout."""
        try:
            self._conn.send(event)
            if not self._conn.poll(self.function.timeout_seconds + REPLY_GRACE_SECONDS):
                log.warning(
                    "%s timed out after %.1f s; its environment is stopped",
                    self.function.logical_id,
                    self.function.timeout_seconds,
                )
                self.kill()
                return Invocation("timeout")
            status, result = self._conn.recv()
        except (EOFError, OSError):
            self.kill()
            return Invocation("crashed")
        return Invocation(str(status), result)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=STOP_SECONDS)
        self._conn.close()

    def close(self) -> None:
        """Stop the worker: it leaves when its connection closes; killed if it does not."""
        self._conn.close()
        self.process.join(timeout=STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=STOP_SECONDS)


CALLS_FILE_VARIABLE = "DEVSTACK_CALLS_FILE"


def _invoke(handler: Any, function: Function, event: Any, context: LambdaContext, recording: bool) -> Any:
    if not recording:
        return handler(event, context)
    from devstack import iam

    with iam.invoking(function.logical_id):
        return handler(event, context)


def _serve(function: Function, conn: multiprocessing.connection.Connection, environment: dict[str, str]) -> None:
    """The worker's loop: load the function, then answer invocations until the pipe closes."""
    # Ctrl-C and a terminal's hang-up reach every process of the job: the local stack stops
    # its workers itself (a worker interrupted mid-wait printed a KeyboardInterrupt traceback).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    os.dup2(2, 1)  # print() and Powertools' handlers (made on stdout at import) write to stderr
    os.environ.clear()
    os.environ.update(environment)
    handler = Functions().handler(function)
    sink = environment.get(CALLS_FILE_VARIABLE)
    if sink:  # the integration tests check every AWS call a function makes against its policy
        from pathlib import Path

        from devstack import iam
        from devstack.template import load_template

        iam.install(iam.Recorder(iam.environment_names(load_template(), environment), Path(sink)))
    while True:
        try:
            event = conn.recv()
        except (EOFError, OSError):
            return
        context = LambdaContext(
            function_name=function.logical_id,
            aws_request_id=str(uuid.uuid4()),
            timeout_seconds=function.timeout_seconds,
        )
        try:
            reply: tuple[str, Any] = ("ok", _invoke(handler, function, event, context, bool(sink)))
        except Exception as exc:
            traceback.print_exc()
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
