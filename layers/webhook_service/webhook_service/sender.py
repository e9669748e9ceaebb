"""Signed HTTP delivery to a receiver: one POST of exact bytes to the vetted address (the
original host name for `Host`, SNI and the certificate check), a bounded read, and a hard
deadline. Whatever the receiver does, `Sender.post` returns an outcome; it never raises.

**Deadline.** An attempt ends within `total_timeout` (15 s) of wall-clock time. The DNS
lookup gets at most `resolve_timeout` (5 s), the TCP connect at most `connect_timeout`
(5 s), and every later socket operation (TLS handshake, sending, the status line, each
header line, each piece of the body) only the time left before one fixed end. A receiver
that trickles its answer a byte at a time is therefore cut at that end: urllib3's `total`
timeout bounded each read, not the exchange, and a trickle held an attempt for minutes.

**Outcomes.** No answer, or headers unfinished, at the deadline: `webhook-timeout`. A status
that arrived in time decides the outcome even if the body is then cut (by the deadline, the
64 KiB bound or a broken encoding): 2xx is success, with what arrived as the excerpt;
anything else `webhook-response-status` (or `webhook-timeout` when the deadline cut the
body). An answer that is not HTTP (a garbage status line, a header line over 64 KiB, more
than 100 header lines), a refused or reset connection: `webhook-connection-failed`. TLS
failures: `webhook-tls-error`. Redirects are never followed. Nothing is decompressed: the
request asks for `Accept-Encoding: identity` and the body is read as bytes.

**Connections** are kept alive and reused per (scheme, address, port, host name), at most
POOL_SIZE idle ones each, with one TLS context shared by all (made at the first HTTPS
connection, so it is not a cost of every cold start). An idle connection the receiver has
closed is dropped before use; a request on a reused connection that the receiver closed
unanswered is sent once more on a new one.
"""

from __future__ import annotations

import http.client
import io
import math
import select
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from webhook_service import USER_AGENT
from webhook_service.domain.delivery import (
    BLOCKED_TARGET,
    CONNECTION_FAILED,
    RESPONSE_STATUS,
    TIMEOUT,
    TLS_ERROR,
    DeliveryResult,
    is_http_status,
    printable,
)
from webhook_service.guard import BlockedTargetError, ResolutionError, Resolver, resolve_within, system_resolver, vet
from webhook_service.logs import logger

MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 512
POOL_SIZE = 10  # idle connections kept per receiver
MAX_POOLS = 100  # receivers whose idle connections are kept; the least recently used go first
BLOCKED_EXCERPT = "the receiver's address is not allowed"  # never what a name resolved to
_IO_CHUNK = 16 * 1024


_Key = tuple[str, str, int, str]  # scheme, vetted address, port, host name
# How a receiver's close of a kept-alive connection shows when the next request goes out.
_CLOSED_BY_PEER = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


def default_ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the given CA bundle, else certifi's."""
    if ca_bundle is None:
        import certifi

        ca_bundle = certifi.where()
    context = ssl.create_default_context(cafile=ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class DeadlineError(TimeoutError):
    """The attempt's fixed end has passed."""


class _DeadlineSocket:
    """A connected socket whose every send and receive gets only the time left before
    `deadline` (time.monotonic()). It stays open until both the connection and the
    response reading from it have closed it, as a socket's makefile() does."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self._readers = 0
        self._closed = False

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineError("the attempt's deadline passed")
        self.sock.settimeout(left)

    def sendall(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _IO_CHUNK):
            self._arm()
            self.sock.sendall(view[start : start + _IO_CHUNK])

    def recv_into(self, buffer: Any) -> int:
        self._arm()
        return self.sock.recv_into(buffer)

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_Reader(self), _IO_CHUNK)

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self.sock.close()

    def close(self) -> None:
        self._closed = True
        if self._readers <= 0:
            self.sock.close()

    def idle_and_open(self) -> bool:
        """True when nothing has arrived since the last answer: no EOF, no stray bytes."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return False
        try:
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(self.sock, select.POLLIN)
                return not poller.poll(0)
            readable, _, _ = select.select([self.sock], [], [], 0)
            return not readable
        except (OSError, ValueError):
            return False


class _Reader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock.reader_closed()
        super().close()


class _Connection(http.client.HTTPConnection):
    """An HTTP/1.1 connection to a vetted address, with TLS for the URL's host name, whose
    socket operations stop at the deadline of the request being made."""

    def __init__(self, key: _Key, tls: ssl.SSLContext | None, connect_timeout: float) -> None:
        _, address, port, _ = key
        super().__init__(address, port, timeout=connect_timeout)
        self.key = key
        self.tls = tls
        self.deadline = math.inf

    def start(self, deadline: float) -> None:
        self.deadline = deadline
        if isinstance(self.sock, _DeadlineSocket):
            self.sock.deadline = deadline

    def connect(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineError("the attempt's deadline passed before connecting")
        raw = socket.create_connection((self.host, self.port), timeout=min(float(self.timeout or left), left))
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                raw.settimeout(max(self.deadline - time.monotonic(), 0.001))
                raw = self.tls.wrap_socket(raw, server_hostname=self.key[3])
        except BaseException:
            raw.close()
            raise
        self.sock = _DeadlineSocket(raw, self.deadline)

    def reusable(self) -> bool:
        return isinstance(self.sock, _DeadlineSocket) and self.sock.idle_and_open()


class Sender:
    """Delivers signed bodies. Reuse one per process: it owns the idle connections."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        connect_timeout: float = 5.0,
        total_timeout: float = 15.0,
        resolve_timeout: float = 5.0,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
        loopback_only: bool = False,
    ) -> None:
        self.allow_private = allow_private
        self.loopback_only = loopback_only
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.resolve_timeout = resolve_timeout
        self.resolver = resolver
        if isinstance(ssl_context, ssl.SSLContext):
            given = ssl_context
            self._make_ssl_context: Callable[[], ssl.SSLContext] = lambda: given
        else:
            self._make_ssl_context = ssl_context or default_ssl_context
        self._ssl_context: ssl.SSLContext | None = None
        self._idle: OrderedDict[_Key, list[_Connection]] = OrderedDict()
        self._lock = threading.Lock()

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryResult:
        started = time.monotonic()
        try:
            return self._post(url, body, headers, started, started + self.total_timeout)
        except Exception as exc:  # a receiver must never make a delivery raise; a bug of ours neither
            logger.exception("delivery failed unexpectedly", extra={"url_host": urlsplit(url).hostname})
            return _failed(CONNECTION_FAILED, started, f"the delivery failed: {type(exc).__name__}")

    def _post(
        self, url: str, body: bytes, headers: Mapping[str, str], started: float, deadline: float
    ) -> DeliveryResult:
        parts = urlsplit(url)
        hostname = parts.hostname or ""
        if parts.scheme not in ("http", "https") or (parts.scheme == "http" and not self.allow_private):
            logger.warning("delivery target refused", extra={"reason": f"scheme {parts.scheme!r} is not allowed"})
            return _failed(BLOCKED_TARGET, started, BLOCKED_EXCERPT)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = self._vetted(hostname, port, started, deadline)
        if isinstance(address, DeliveryResult):
            return address
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        all_headers = {
            "Host": parts.netloc,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "Accept-Encoding": "identity",
            **headers,
        }
        return self._exchange((parts.scheme, address, port, hostname), target, body, all_headers, started, deadline)

    def _vetted(self, hostname: str, port: int, started: float, deadline: float) -> str | DeliveryResult:
        """The address to connect to (resolved once, within the deadline, and allowed), or
        the result of a delivery refused or unresolved."""

        def bounded(host: str, port: int) -> list[str]:
            limit = min(self.resolve_timeout, deadline - time.monotonic())
            return list(resolve_within(self.resolver, host, port, limit))

        try:
            return vet(hostname, port, bounded, allow_private=self.allow_private, loopback_only=self.loopback_only)
        except BlockedTargetError as exc:
            logger.warning("delivery target refused", extra={"reason": str(exc)})
            return _failed(BLOCKED_TARGET, started, BLOCKED_EXCERPT)
        except ResolutionError as exc:
            return _failed(CONNECTION_FAILED, started, str(exc))

    def _exchange(
        self, key: _Key, target: str, body: bytes, headers: dict[str, str], started: float, deadline: float
    ) -> DeliveryResult:
        """Send the request on a pooled connection (once more on a new one when a kept-alive
        connection turns out closed) and read the answer, all before the deadline."""
        connection, reused = self._checkout(key)
        while True:
            connection.start(deadline)
            try:
                connection.request("POST", target, body=body, headers=headers)
                response = connection.getresponse()
                break
            except _CLOSED_BY_PEER as exc:
                connection.close()
                if not reused:
                    error = TLS_ERROR if isinstance(exc, ssl.SSLError) else CONNECTION_FAILED
                    return _failed(error, started, _reason(exc))
                # A kept-alive connection the receiver closed as the request went out: once more.
                connection, reused = self._new_connection(key), False
            except TimeoutError as exc:
                connection.close()
                waited = time.monotonic() - started
                return _failed(TIMEOUT, started, f"no complete answer after {waited:.1f} s ({_reason(exc)})")
            except ssl.SSLError as exc:
                connection.close()
                return _failed(TLS_ERROR, started, _reason(exc))
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                return _failed(CONNECTION_FAILED, started, _reason(exc))
        return self._read(connection, response, started)

    def _read(self, connection: _Connection, response: http.client.HTTPResponse, started: float) -> DeliveryResult:
        """At most 64 KiB of the body, until the deadline; the connection is kept for the
        next delivery only when the body was read to its end. A status HTTP does not have
        (http.client takes up to 999) is no HTTP answer: nothing of it is kept."""
        status = response.status
        if not is_http_status(status):
            response.close()
            connection.close()
            return _failed(CONNECTION_FAILED, started, f"the answer is not HTTP: status {status}")
        chunks: list[bytes] = []
        size, timed_out = 0, False
        try:
            while size < MAX_RESPONSE_BYTES:
                chunk = response.read1(MAX_RESPONSE_BYTES - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if response.length == 0:
                response.read()  # nothing left: this marks the response done, the connection free
        except TimeoutError:
            timed_out = True
        except (OSError, http.client.HTTPException, ValueError):
            pass  # a broken body: the status stands, with what arrived
        if size < MAX_RESPONSE_BYTES and response.isclosed() and connection.reusable():
            self._checkin(connection)
        else:
            response.close()
            connection.close()
        excerpt = printable(b"".join(chunks).decode("utf-8", errors="replace")[:EXCERPT_CHARS], EXCERPT_CHARS)
        # A status that arrived in time decides; the deadline cutting the body only shows
        # when the status was not a success.
        error = None if 200 <= status < 300 else TIMEOUT if timed_out else RESPONSE_STATUS
        return DeliveryResult(
            error=error,
            status_code=status,
            duration_ms=_elapsed_ms(started),
            response_excerpt=excerpt,
            retry_after=response.getheader("Retry-After"),
        )

    def _shared_ssl_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl_context is None:
                self._ssl_context = self._make_ssl_context()
            return self._ssl_context

    def _new_connection(self, key: _Key) -> _Connection:
        tls = self._shared_ssl_context() if key[0] == "https" else None
        return _Connection(key, tls, self.connect_timeout)

    def _checkout(self, key: _Key) -> tuple[_Connection, bool]:
        """An idle connection to `key` still open, else a new one; and whether it is reused."""
        stale: list[_Connection] = []
        found: _Connection | None = None
        with self._lock:
            idle = self._idle.get(key, [])
            while idle and found is None:
                candidate = idle.pop()
                if candidate.reusable():
                    found = candidate
                else:
                    stale.append(candidate)
        for connection in stale:
            connection.close()
        return (found, True) if found is not None else (self._new_connection(key), False)

    def _checkin(self, connection: _Connection) -> None:
        dropped: list[_Connection] = []
        with self._lock:
            idle = self._idle.setdefault(connection.key, [])
            self._idle.move_to_end(connection.key)
            if len(idle) < POOL_SIZE:
                idle.append(connection)
            else:
                dropped.append(connection)
            while len(self._idle) > MAX_POOLS:
                dropped.extend(self._idle.popitem(last=False)[1])
        for extra in dropped:
            extra.close()


def failed_result(error: str, started: float, reason: str, status: int | None = None) -> DeliveryResult:
    """A delivery that failed, its reason (which may quote the receiver) made printable."""
    return DeliveryResult(
        error=error,
        status_code=status,
        duration_ms=_elapsed_ms(started),
        response_excerpt=printable(reason, EXCERPT_CHARS),
    )


_failed = failed_result


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _reason(exc: BaseException) -> str:
    """A short description of a transport error (it may quote the receiver's own bytes)."""
    return f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS]
