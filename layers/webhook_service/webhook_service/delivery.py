"""Signed HTTP delivery to a receiver (SPEC section 7): one POST of exact bytes, to the
vetted address, with the original host name for `Host` and TLS, and a bounded read.

One session per process is reused across warm invocations; connections are pooled per
receiver host. Redirects are never followed. Timeouts: 5 s to connect, 15 s in all.
"""

from __future__ import annotations

import contextvars
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Timeout

from webhook_service import USER_AGENT
from webhook_service.guard import BlockedTargetError, ResolutionError, Resolver, system_resolver, vet

MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 512
POOL_SIZE = 10

# Outcome codes (SPEC section 4).
TIMEOUT = "webhook-timeout"
CONNECTION_FAILED = "webhook-connection-failed"
TLS_ERROR = "webhook-tls-error"
RESPONSE_STATUS = "webhook-response-status"
BLOCKED_TARGET = "webhook-blocked-target"

_connect_to: contextvars.ContextVar[str] = contextvars.ContextVar("connect_to")


@dataclass(frozen=True)
class DeliveryResult:
    """What a receiver did with one delivery."""

    error: str | None  # None: a 2xx in time
    status_code: int | None
    duration_ms: int
    response_excerpt: str
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_task_result(self) -> dict[str, Any]:
        return {
            "status_code": self.status_code,
            "duration_ms": self.duration_ms,
            "response_excerpt": self.response_excerpt,
        }


def delivery_url(config_url: str, event_id: str) -> str:
    """The config's URL with the event id as one more path segment; the query is kept."""
    parts = urlsplit(config_url)
    path = parts.path.rstrip("/") + "/" + event_id
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class _VettedAddressAdapter(HTTPAdapter):
    """Connects to the address the guard vetted (no second lookup), keeping the URL's host
    name for TLS (SNI and certificate check), and one shared TLS context (loading the CA
    bundle once, not at every new connection). The context is made at the first HTTPS
    connection, as botocore does with its own, so that it is not a cost of every cold start."""

    def __init__(self, ssl_context: Callable[[], ssl.SSLContext]) -> None:
        self._make_ssl_context = ssl_context
        self._ssl_context: ssl.SSLContext | None = None
        self._ssl_lock = threading.Lock()
        super().__init__(pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE, max_retries=0)

    def _shared_ssl_context(self) -> ssl.SSLContext:
        with self._ssl_lock:
            if self._ssl_context is None:
                self._ssl_context = self._make_ssl_context()
            return self._ssl_context

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """Certificates are always checked, by the shared context's own trust store. requests
        would set the connection's CA file, and urllib3 would then load it into the shared
        context again at every new connection (20-30 ms each)."""
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:
        host_typed, pool_typed = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params, pool_kwargs = cast(dict[str, Any], host_typed), cast(dict[str, Any], pool_typed)
        hostname = host_params["host"]
        host_params["host"] = _connect_to.get()
        if host_params["scheme"] == "https":
            for name in ("ca_certs", "ca_cert_dir", "cert_reqs"):
                pool_kwargs.pop(name, None)
            pool_kwargs["ssl_context"] = self._shared_ssl_context()
            pool_kwargs["server_hostname"] = hostname
            pool_kwargs["assert_hostname"] = hostname
        return host_params, pool_kwargs


def default_ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the given CA bundle, else certifi's (as requests uses)."""
    if ca_bundle is None:
        import certifi

        ca_bundle = certifi.where()
    context = ssl.create_default_context(cafile=ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Sender:
    """Delivers signed bodies. Reuse one per process: it owns the connection pools."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        connect_timeout: float = 5.0,
        total_timeout: float = 15.0,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
        loopback_only: bool = False,
    ) -> None:
        self.allow_private = allow_private
        self.loopback_only = loopback_only
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.resolver = resolver
        self._timeout = Timeout(connect=connect_timeout, read=total_timeout, total=total_timeout)
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies or CA bundles from the environment
        if isinstance(ssl_context, ssl.SSLContext):
            given = ssl_context
            adapter = _VettedAddressAdapter(lambda: given)
        else:
            adapter = _VettedAddressAdapter(ssl_context or default_ssl_context)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryResult:
        started = time.monotonic()
        parts = urlsplit(url)
        hostname = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = vet(
                hostname, port, self.resolver, allow_private=self.allow_private, loopback_only=self.loopback_only
            )
        except BlockedTargetError as exc:
            return self._failed(BLOCKED_TARGET, started, str(exc))
        except ResolutionError as exc:
            return self._failed(CONNECTION_FAILED, started, str(exc))
        if parts.scheme == "http" and not self.allow_private:
            return self._failed(BLOCKED_TARGET, started, "plain http is not allowed")

        all_headers = {
            "Host": parts.netloc,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            **headers,
        }
        token = _connect_to.set(address)
        try:
            response = self.session.post(
                url,
                data=body,
                headers=all_headers,
                allow_redirects=False,
                stream=True,
                # urllib3's Timeout bounds the whole exchange up to the response headers by
                # `total`, which a (connect, read) pair cannot; requests passes it through.
                timeout=cast(
                    Any, Timeout(connect=self.connect_timeout, read=self.total_timeout, total=self.total_timeout)
                ),
            )
        except requests.exceptions.SSLError as exc:
            return self._failed(TLS_ERROR, started, _reason(exc))
        except requests.exceptions.Timeout as exc:
            return self._failed(TIMEOUT, started, _reason(exc))
        except (requests.exceptions.ConnectionError, requests.exceptions.RequestException) as exc:
            return self._failed(CONNECTION_FAILED, started, _reason(exc))
        finally:
            _connect_to.reset(token)
        try:
            content, timed_out = self._read(response, started)
        except requests.exceptions.RequestException as exc:
            response.close()
            return self._failed(CONNECTION_FAILED, started, _reason(exc), response.status_code)
        excerpt = content.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
        if timed_out:
            return self._failed(TIMEOUT, started, excerpt, response.status_code)
        error = None if 200 <= response.status_code < 300 else RESPONSE_STATUS
        return DeliveryResult(
            error=error,
            status_code=response.status_code,
            duration_ms=_elapsed_ms(started),
            response_excerpt=excerpt,
            retry_after=response.headers.get("Retry-After"),
        )

    def _read(self, response: requests.Response, started: float) -> tuple[bytes, bool]:
        """At most 64 KiB of the body, stopping at the deadline. Closing the response puts
        the connection back in the pool when the body was read to its end, and drops it
        otherwise."""
        deadline = started + self.total_timeout
        chunks: list[bytes] = []
        size = 0
        timed_out = False
        try:
            for chunk in response.iter_content(chunk_size=8192):
                chunks.append(chunk)
                size += len(chunk)
                if size >= MAX_RESPONSE_BYTES:
                    break
                if time.monotonic() > deadline:
                    timed_out = True
                    break
        except requests.exceptions.ConnectionError as exc:
            if "timed out" not in str(exc).lower():
                raise
            timed_out = True
        finally:
            response.close()
        return b"".join(chunks)[:MAX_RESPONSE_BYTES], timed_out

    @staticmethod
    def _failed(error: str, started: float, reason: str, status: int | None = None) -> DeliveryResult:
        return DeliveryResult(
            error=error, status_code=status, duration_ms=_elapsed_ms(started), response_excerpt=reason[:EXCERPT_CHARS]
        )


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _reason(exc: Exception) -> str:
    """A short, safe description of a transport error (no URL credentials: URLs have none)."""
    inner = exc.args[0] if exc.args else exc
    reason = getattr(inner, "reason", inner)
    return f"{type(exc).__name__}: {reason}"[:EXCERPT_CHARS]
