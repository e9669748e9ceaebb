"""A webhook receiver on 127.0.0.1, for the tests and the benchmarks: an HTTP(S) server that
records what it gets and answers by path (`Receiver`). The tests' hostile receivers are in
tests/support/receivers.py."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from devstack.servers import LocalServer

MAX_HOLD_SECONDS = 20.0


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers by the first path segment: `/ok` 200, `/status/<code>`, `/redirect` 302,
    `/slow/<seconds>` answers 200 late, `/hold/<name>` waits until `release(name)`, `/big` sends 1 MiB."""

    tls: ssl.SSLContext | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    connections: int = 0

    def _answer(self, parts: list[str]) -> tuple[int, bytes, dict[str, str]]:
        """The status, body and extra headers the path's first segment asks for (waiting
        first for `/slow` and `/hold`)."""
        kind = parts[0] if parts else ""
        if kind == "status":
            extra = {"Retry-After": parts[3]} if len(parts) > 3 and parts[2] == "retry-after" else {}
            return int(parts[1]), b"thanks", extra
        if kind == "redirect":
            return 302, b"thanks", {"Location": "/ok"}
        if kind == "slow":
            self._stopping.wait(min(float(parts[1]), MAX_HOLD_SECONDS))
        elif kind == "hold":
            self._hold(parts[1] if len(parts) > 1 else "").wait(MAX_HOLD_SECONDS)
        elif kind == "big":
            return 200, b"x" * (1024 * 1024), {}
        return 200, b"thanks", {}

    def __post_init__(self) -> None:
        self._holds: dict[str, threading.Event] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each response waits out the client's delayed ACK

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver.connections += 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                status, payload, extra = receiver._answer(parts)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client stopped reading: a bounded read does
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = LocalServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def _hold(self, name: str) -> threading.Event:
        with self._lock:
            return self._holds.setdefault(name, threading.Event())

    def release(self, name: str) -> None:
        self._hold(name).set()

    def deliveries_to(self, prefix: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.path.startswith(prefix)]

    def wait_for(self, prefix: str, timeout: float = 10.0) -> Delivery:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.deliveries_to(prefix)
            if found:
                return found[-1]
            time.sleep(0.05)
        raise TimeoutError(f"nothing delivered to {prefix}")

    def close(self) -> None:
        self._stopping.set()
        with self._lock:
            for hold in self._holds.values():
                hold.set()
        self.server.shutdown()
        self.server.server_close()
