"""A local stand-in for API Gateway HTTP API: matches the template's routes and calls the
functions with payload format 2.0 events."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devstack.runtime import Functions
from devstack.servers import LocalServer
from devstack.template import Route

log = logging.getLogger("devstack.gateway")
MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway's own request limit


def _segments(path: str) -> list[str]:
    """Path segments, exactly: as in API Gateway, `/tasks/` is not `/tasks`."""
    return path.split("/")


def _bind(pattern: list[str], parts: list[str]) -> tuple[tuple[bool, int], dict[str, str]] | None:
    """How well a route's segments match a path's, and the path parameters they give; None
    when they do not match."""
    greedy = pattern[-1].endswith("+}")
    if greedy:
        rest = "/".join(parts[len(pattern) - 1 :])
        if len(parts) < len(pattern) or not rest:
            return None
        parts = [*parts[: len(pattern) - 1], rest]
    elif len(pattern) != len(parts):
        return None
    params: dict[str, str] = {}
    literal = 0
    for want, got in zip(pattern, parts, strict=True):
        if want.startswith("{") and want.endswith("}") and got:
            params[want[1:-1].rstrip("+")] = got
        elif want == got:
            literal += 1
        else:
            return None
    return (not greedy, literal), params


def match(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route API Gateway would pick: the most literal segments wins, a greedy `{name+}`
    (the last segment; it takes the rest of the path, at least one character) loses to any
    route without one; `$default` last."""
    best: tuple[tuple[bool, int], Route, dict[str, str]] | None = None
    parts = _segments(path)
    for route in routes:
        if route.path == "$default" or route.method not in (method, "ANY"):
            continue
        bound = _bind(_segments(route.path), parts)
        if bound is not None and (best is None or bound[0] > best[0]):
            best = (bound[0], route, bound[1])
    if best:
        return best[1], best[2]
    default = next((r for r in routes if r.path == "$default"), None)
    return (default, {}) if default else None


def build_event(
    route: Route, params: dict[str, str], method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str
) -> dict[str, Any]:
    split = urlsplit(target)
    query: dict[str, str] = {}
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value  # API Gateway joins repeats
    route_key = "$default" if route.path == "$default" else f"{route.method} {route.path}"
    now = dt.datetime.now(dt.UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": split.path,
        "rawQueryString": split.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": split.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if params:
        event["pathParameters"] = params
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


class Gateway:
    """Serves the template's HttpApi routes on 127.0.0.1."""

    def __init__(self, routes: list[Route], functions: Functions, port: int) -> None:
        self.routes = routes
        self.functions = functions
        gateway = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                gateway.serve(self)

            def __getattr__(self, name: str) -> Any:
                # Every method (TRACE, PURGE, ...) reaches the routes, as in API Gateway,
                # where anything unmatched goes to the $default route.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
                log.debug(format, *args)

        self.server = LocalServer(("127.0.0.1", port), _Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def serve(self, http: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        length = int(http.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD:
            self._write(
                http,
                413,
                {"Content-Type": "application/json"},
                b'{"error":"invalid-body","message":"The request is too large."}',
            )
            return
        body = http.rfile.read(length) if length else b""
        headers: dict[str, str] = {}
        for name, value in http.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        method = http.command
        found = match(self.routes, method, urlsplit(http.path).path)
        if found is None:
            self._write(http, 404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}')
            return
        route, params = found
        event = build_event(route, params, method, http.path, headers, body, http.client_address[0])
        try:
            result = self.functions.invoke(route.function, event)
            status = int(result.get("statusCode", 200))
            out_headers = dict(result.get("headers") or {})
            raw = result.get("body") or ""
            payload = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
        except Exception:  # what API Gateway answers when the function itself fails
            log.exception("function %s failed", route.function.logical_id)
            status, out_headers = 500, {"Content-Type": "application/json"}
            payload = json.dumps({"message": "Internal Server Error"}).encode()
        self._write(http, status, out_headers, b"" if method == "HEAD" else payload)
        log.info(
            "%s %s -> %s %s (%.1f ms)",
            method,
            http.path,
            status,
            route.function.logical_id,
            (time.monotonic() - started) * 1000,
        )

    @staticmethod
    def _write(http: BaseHTTPRequestHandler, status: int, headers: dict[str, str], payload: bytes) -> None:
        http.send_response(status)
        for name, value in headers.items():
            http.send_header(name, value)
        http.send_header("Content-Length", str(len(payload)))
        http.end_headers()
        http.wfile.write(payload)
