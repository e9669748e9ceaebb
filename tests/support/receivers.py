"""Hostile webhook receivers on 127.0.0.1 for the tests: a server that resets every
connection, and one that answers by path in the ways receivers misbehave. The well-behaved
receiver is devstack.receiver.Receiver (the benchmarks use it too)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TLS_HANDSHAKE = b"\x16"  # the first byte of a TLS handshake record (a ClientHello)


class ResettingServer:
    """Accepts TCP connections and resets them at once (SO_LINGER 0)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


# -- hostile receivers -------------------------------------------------------------------------

TRICKLE_SECONDS = 0.5  # one byte this often: every byte arrives well within any read timeout
MAX_TRICKLE_SECONDS = 40.0  # a trickle ends by itself after this long (tests are bounded)
HUGE_BODY_BYTES = 30 * 1024 * 1024
LONG_RETRY_AFTER = "1" + " " * 4998 + "2"  # 5,000 characters: read as one number it would be 1 s
RETRY_AFTER = {
    "huge": "99999999999999",
    "digits": "9" * 5000,  # more digits than Python's int() takes
    "negative": "-5",
    "far-date": "Fri, 31 Dec 9999 23:59:59 GMT",
    "long": LONG_RETRY_AFTER,
    "binary": "\xff\xfe\x80\x01",  # bytes that are neither ASCII nor UTF-8
}


def gzip_bomb(size: int = 64 * 1024 * 1024) -> bytes:
    """`size` zero bytes, gzipped (about 64 KiB): a body that grows 1000-fold if decoded."""
    import gzip

    return gzip.compress(bytes(size), compresslevel=9)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it was read


class HostileReceiver:
    """A raw HTTP/1.1 server on 127.0.0.1 that misbehaves as the first path segment says:

    | path | answer |
    |---|---|
    | `/trickle-headers` | `200` status line, then one header byte every 0.5 s |
    | `/trickle-body` | `200` with `Content-Length: 1000`, then one body byte every 0.5 s |
    | `/silent` | reads the request and never answers |
    | `/huge` | `200` and a 30 MB body, as fast as the client reads |
    | `/gzip-bomb` | `200`, `Content-Encoding: gzip`, 64 KiB that decode to 64 MiB |
    | `/garbage` | a status line that is not HTTP |
    | `/long-header` | `200` with one 70 KiB header line |
    | `/many-headers` | `200` with 150 header lines |
    | `/binary-headers` | `200` with header values in UTF-8, in no encoding at all, and with a NUL |
    | `/bad-chunks` | `200`, chunked, then a chunk size that is not hex |
    | `/controls` | `200` with `CONTROLS` as its body |
    | `/status/<code>` | that status; `/status/<code>/retry-after/<name>`: with `RETRY_AFTER[name]` |
    | `/close-second` | `200`, keep-alive; the second request on a connection is closed unanswered |

    A TLS handshake (a connection whose first byte is a TLS handshake record's, 0x16) is
    never answered, whatever its random bytes would read as: the `https` cases rely on it.
    | `/after-test/<rest>` | `200` to a config's test event; any other delivery as `/<rest>` says |
    | `/ok` (or anything else) | `200` `thanks` |
    """

    def __init__(self) -> None:
        import socketserver

        self.requests: list[Request] = []
        self.connections = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with receiver._lock:
                    receiver.connections += 1
                receiver._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True
            request_queue_size = 64  # http.server's 5 drops SYNs under concurrent tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def requests_to(self, prefix: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(MAX_TRICKLE_SECONDS)
        reader = conn.makefile("rb")
        served = 0
        with contextlib.suppress(OSError, ValueError):
            if reader.peek(1)[:1] == TLS_HANDSHAKE:
                # Read as HTTP, a ClientHello's random bytes could end a "request" (a 0x0a
                # pair) and get an answer: the handshake must stay unanswered.
                self._silent(conn)
                return
            while not self._stop.is_set():
                request = self._read_request(reader)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                served += 1
                if not self._answer(conn, request, served):
                    return

    @staticmethod
    def _read_request(reader: Any) -> Request | None:
        line = reader.readline(65536)
        if not line:
            return None
        path = line.split(b" ")[1].decode("latin-1") if line.count(b" ") >= 2 else "/"
        headers: dict[str, str] = {}
        for _ in range(200):
            header = reader.readline(65536)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = reader.read(int(headers.get("content-length", "0") or 0))
        return Request(path, headers, body, time.monotonic())

    def _trickle(self, conn: socket.socket, data: bytes) -> None:
        for n in range(len(data)):
            if self._stop.wait(TRICKLE_SECONDS):
                return
            conn.sendall(data[n : n + 1])

    def _answer(self, conn: socket.socket, request: Request, served: int) -> bool:
        """Answer one request; False when the connection is done with."""
        parts = _route(request)
        kind = parts[0] if parts else ""
        if kind in _FIXED_ANSWERS:
            answer, keep_open = _FIXED_ANSWERS[kind]
            conn.sendall(answer)
            return keep_open
        behaviour = self._behaviours().get(kind)
        if behaviour is not None:
            behaviour(conn)
            return False
        if kind == "close-second" and served > 1:
            return False
        status, extra = 200, b""
        if kind == "status":
            status = int(parts[1])
            if len(parts) > 3 and parts[2] == "retry-after":
                extra = f"Retry-After: {RETRY_AFTER[parts[3]]}\r\n".encode("latin-1")
        conn.sendall(b"HTTP/1.1 %d Hostile\r\n%bContent-Length: 6\r\n\r\nthanks" % (status, extra))
        return True

    def _behaviours(self) -> dict[str, Callable[[socket.socket], None]]:
        """The answers that take time or are made on the spot; each closes the connection."""
        return {
            "trickle-headers": self._trickle_headers,
            "trickle-body": self._trickle_body,
            "silent": self._silent,
            "huge": _send_huge,
            "gzip-bomb": _send_gzip_bomb,
        }

    def _silent(self, conn: socket.socket) -> None:
        self._stop.wait(MAX_TRICKLE_SECONDS)

    def _trickle_headers(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        self._trickle(conn, b"X-Slow: " + b"a" * int(MAX_TRICKLE_SECONDS / TRICKLE_SECONDS) + b"\r\n\r\n")

    def _trickle_body(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nbegin:")
        self._trickle(conn, b"." * 994)


# A body that would rewrite a terminal (clear it, write the clipboard, recolour, reverse the
# text) and hide a line: NUL, BEL, ESC sequences, C1 controls, separators, bidi overrides.
CONTROLS = "ok\x00\x07\x1b[2J\x1b]52;c;aGk=\x07\u009b31m\u0085\u2028\u202eevil\u2066"
_TEST_PASSES = "(a test, answered 200)"
# Answers sent whole: the bytes, and whether the connection then stays open.
_FIXED_ANSWERS: dict[str, tuple[bytes, bool]] = {
    _TEST_PASSES: (b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nthanks", True),
    "garbage": (b"SPAM SPAM SPAM\r\n\r\n", False),
    "long-header": (b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\nContent-Length: 0\r\n\r\n", False),
    "many-headers": (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"X-Header-%d: %d\r\n" % (n, n) for n in range(150))
        + b"Content-Length: 0\r\n\r\n",
        False,
    ),
    "binary-headers": (
        b"HTTP/1.1 200 \xff\xfe\r\nX-Name: caf\xc3\xa9\r\nX-Bytes: \xff\x00\xfe\x80\r\nContent-Length: 6\r\n\r\nthanks",
        True,
    ),
    "bad-chunks": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", False),
    "controls": (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(CONTROLS.encode()) + CONTROLS.encode(),
        True,
    ),
}


def _route(request: Request) -> list[str]:
    """The path's segments; `/after-test/<rest>` passes a config's test and routes its events by <rest>."""
    parts = [p for p in request.path.split("?")[0].split("/") if p]
    if parts[:1] == ["after-test"]:
        return [_TEST_PASSES] if b'"action":"test"' in request.body else parts[1:]
    return parts


def _send_huge(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % HUGE_BODY_BYTES)
    chunk = b"x" * 65536
    for _ in range(HUGE_BODY_BYTES // len(chunk)):
        conn.sendall(chunk)


def _send_gzip_bomb(conn: socket.socket) -> None:
    body = gzip_bomb()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
