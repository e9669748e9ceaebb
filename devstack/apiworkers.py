"""The API's functions in worker processes (`python -m devstack --api-workers N`), as Lambda
runs them: each concurrent request in an execution environment of its own, up to N at once per
function, warm environments reused.

By default the local stack's gateway calls the API functions in its own process, one module
per function shared by every request. That is enough to try the API, but not to show what
holds across function instances: each instance has its own memory (the key cache, the
routing cache, what the rate limit remembers), and only what the table holds is shared. With
workers, N requests at once to one route run in N processes (`devstack.workers.Worker`), so a
test or a benchmark sees what N Lambda instances would.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from devstack.runtime import Functions
from devstack.template import Function
from devstack.workers import Worker

log = logging.getLogger("devstack.apiworkers")
log.setLevel(logging.INFO)  # a new environment is rare and worth a line, even with --quiet


class FunctionFailedError(RuntimeError):
    """The function raised, outlived its Timeout, or its environment died (API Gateway
    answers 500 for each)."""


class WorkerFunctions(Functions):
    """Functions invoked in worker processes, at most `per_function` at once per function
    (more wait for one to be free, as Lambda's reserved concurrency would throttle them)."""

    def __init__(self, per_function: int) -> None:
        super().__init__()
        self.per_function = per_function
        self.started: dict[str, int] = {}  # environments made, per function
        self._idle: dict[str, list[Worker]] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def invoke(self, function: Function, event: dict[str, Any]) -> Any:
        with self._slots_of(function):
            worker = self._take(function)
            invocation = worker.invoke(event)
            if worker.alive:
                with self._lock:
                    self._idle[function.logical_id].append(worker)
        if not invocation.ok:
            raise FunctionFailedError(f"{function.logical_id}: {invocation.status} {invocation.result or ''}".strip())
        return invocation.result

    def _slots_of(self, function: Function) -> threading.BoundedSemaphore:
        with self._lock:
            if function.logical_id not in self._slots:
                self._slots[function.logical_id] = threading.BoundedSemaphore(self.per_function)
                self._idle[function.logical_id] = []
            return self._slots[function.logical_id]

    def _take(self, function: Function) -> Worker:
        """A warm environment of the function, else a new one."""
        with self._lock:
            idle = self._idle[function.logical_id]
            while idle:
                worker = idle.pop()
                if worker.alive:
                    return worker
            self.started[function.logical_id] = self.started.get(function.logical_id, 0) + 1
            count = self.started[function.logical_id]
        log.info("%s: environment %d started", function.logical_id, count)
        return Worker(function)

    def close(self) -> None:
        with self._lock:
            workers = [worker for idle in self._idle.values() for worker in idle]
            self._idle = {name: [] for name in self._idle}
        for worker in workers:
            worker.close()
