"""Loads each function of the template as Lambda would (its own folder, `app.handler`) and
invokes it with a Lambda-like context."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack.template import Function

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    function_name: str
    aws_request_id: str
    timeout_seconds: float
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Functions:
    """The template's functions, each imported once under its own module name."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def handler(self, function: Function) -> Handler:
        with self._lock:
            if function.logical_id not in self._handlers:
                self._handlers[function.logical_id] = _load(function)
            return self._handlers[function.logical_id]

    def invoke(self, function: Function, event: dict[str, Any]) -> Any:
        context = LambdaContext(
            function_name=function.logical_id,
            aws_request_id=str(uuid.uuid4()),
            timeout_seconds=function.timeout_seconds,  # the template's Timeout, as Lambda gives it
        )
        return self.handler(function)(event, context)


def _load(function: Function) -> Handler:
    module_name, _, attribute = function.handler.rpartition(".")
    path = function.code_dir / f"{module_name}.py"
    spec = importlib.util.spec_from_file_location(f"fn_{function.logical_id}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Handler = getattr(module, attribute)
    return handler


def apply_environment(variables: dict[str, str]) -> None:
    """Functions of one local stack share one process, so they share one environment."""
    os.environ.update({k: str(v) for k, v in variables.items()})
