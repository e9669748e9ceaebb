"""`make listen` (`python -m devstack.listen`): a receiver for development on 127.0.0.1.

It checks both signatures of every delivery (`Ricloud-Signature` and Standard Webhooks)
with a config's secret, prints one line per delivery and answers 200, as the ricloud
CLI's `event listen` and `stripe listen` do. The secret is read through the API
(`--config ID`), or the config is made here, pointing at the receiver (`--create`).
The API and token: `--api`/`--token`, else RICLOUD_URL/RICLOUD_TOKEN, else what
`make dev` saved in .devstack/dev.json. The secret is never printed. A development tool:
it lives with the local stack, not in the Lambda layer.

Anyone on this machine can post to it, so what it prints cannot be trusted until a
signature says so: it reads at most the largest body the service sends (a missing,
negative, malformed or larger Content-Length is refused unread), prints the type, action
and id of verified deliveries only, and shows every control, format or separator character
of what it prints as an escape (`\\x1b`, `\\u202e`), so a forged body can neither draw a
fake "verified" line, nor write to the terminal's clipboard, nor hide or reorder text.

It keeps every secret it has been given and accepts a signature made with any of them, so
it goes on verifying through a secret rotation: when a delivery verifies with none, it
reads the config's secret through the API again (at most once every few seconds), adds
it, and checks once more (docs/design.md §14).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from devstack import persist
from devstack.servers import LocalServer
from webhook_service.signing import SignatureError, verify_ricloud_headers, verify_standard

HOST = "127.0.0.1"
DEFAULT_PORT = 8000  # with --config, when the config's URL names no port on this machine
DEFAULT_API = "http://127.0.0.1:3000"
# The largest body the service sends: an event whose data is at most 64 KiB as JSON
# (webhook_service.events.MAX_DATA_BYTES; tests/unit/test_listen.py holds the two together)
# in an envelope of well under 16 KiB. Anything larger is not a delivery.
MAX_BODY = 80 * 1024
READ_SECONDS = 15.0  # a sender that stops mid-body is cut (a delivery is sent whole, at once)
SECRET_WAIT_SECONDS = 10.0  # --create: the test can come before the API's answer (deliveries wait 15 s)
API_TIMEOUT = 15.0
REFRESH_SECONDS = 5.0  # at most one read of the config's secret this often, on a delivery that fails
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


class ListenError(Exception):
    """The listener cannot start: no token, the API refused, the port is taken."""


# Unicode's control (Cc: C0, DEL, C1), format (Cf: bidirectional overrides and isolates,
# zero-width characters) and line/paragraph separator (Zl, Zp) categories: what a terminal
# acts on or a reader cannot see.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def printable(text: str) -> str:
    """`text` with every character a terminal would act on, or a reader could not see,
    written as a visible escape: `\\x1b` for one below U+0100, `\\u202e` above."""
    return "".join(
        (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        if unicodedata.category(c) in _HIDDEN_CATEGORIES
        else c
        for c in text
    )


def say(text: str, out: TextIO) -> None:
    """Print one line of what the listener knows, escaped (printable)."""
    print(printable(text), file=out, flush=True)


@dataclass(frozen=True)
class Checked:
    """One delivery, as the line printed for it says."""

    received: dt.datetime
    kind: str  # <type>.<action> of the event, or "?" when the body is not an event
    event_id: str
    size: int
    problems: tuple[str, ...]  # why a signature did not verify; empty when both did

    @property
    def verified(self) -> bool:
        return not self.problems

    def line(self) -> str:
        """What is printed for it: the event's type, action and id when both signatures
        verified; otherwise only that it did not, and why (its fields are whatever the
        sender wrote). Escaped: nothing in it reaches the terminal as a control."""
        stamp = self.received.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.verified:
            return printable(f"{stamp}  {self.kind}  {self.event_id}  verified  {self.size} B")
        return printable(f"{stamp}  NOT verified ({'; '.join(self.problems)})  {self.size} B")


def check(
    body: bytes, headers: Mapping[str, str], secret: str | Sequence[str] | None, now: dt.datetime | None = None
) -> Checked:
    """Verify both signatures of a delivery against its raw body with one secret or several
    (any may match; during a rotation `Ricloud-Signature-Next` counts too), and describe it."""
    received = now or dt.datetime.now(dt.UTC)
    lowered = {k.lower(): v for k, v in headers.items()}
    problems: list[str] = []
    if not secret:
        problems.append("no secret to check with")
    else:
        try:
            verify_ricloud_headers(body, lowered, secret, now=received.timestamp())
        except SignatureError as exc:
            problems.append(f"Ricloud-Signature: {exc}")
        try:
            verify_standard(body, lowered, secret, now=received.timestamp())
        except SignatureError as exc:
            problems.append(f"webhook-signature: {exc}")
    kind, event_id = "?", lowered.get("webhook-id") or "-"
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    if isinstance(event, dict):
        kind = f"{event.get('type', '?')}.{event.get('action', '?')}"
        event_id = str(event.get("id") or event_id)
    return Checked(received=received, kind=kind, event_id=event_id, size=len(body), problems=tuple(problems))


class Listener:
    """The receiver: a threaded HTTP server on 127.0.0.1 that answers every POST with 200."""

    def __init__(
        self,
        port: int = 0,
        out: TextIO | None = None,
        refresh: Callable[[], str] | None = None,
        config_id: str | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.config_id = config_id  # whose secret checks the deliveries, named when one does not verify
        self._explained = False
        self.seen: list[Checked] = []
        self._secrets: list[str] = []
        self.refresh = refresh  # reads the config's current secret (after a rotation)
        self.refreshed_at = -REFRESH_SECONDS
        self._ready = threading.Event()
        self._lock = threading.Lock()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            timeout = READ_SECONDS  # on every read of the socket

            def do_POST(self) -> None:
                length, refusal = body_length(self.headers.get("Content-Length"), self.headers.get("Transfer-Encoding"))
                if refusal:
                    self._answer(*refusal)
                    self.close_connection = True  # the body, if any, is never read
                    return
                body = self.rfile.read(length)
                if len(body) < length:  # the sender stopped early: nothing to check
                    self.close_connection = True
                    return
                listener.record(body, dict(self.headers.items()))  # printed before the answer, in order
                self._answer(200, b"ok")

            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
                pass  # one line per delivery, printed by record()

        try:
            self.server = LocalServer((HOST, port), Handler)
        except OSError as exc:
            hint = "; LISTEN_PORT=<another port> make listen (--port) listens elsewhere" if port else ""
            raise ListenError(f"cannot listen on {HOST}:{port}: {exc.strerror}{hint}") from None
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="listener", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def set_secret(self, secret: str) -> None:
        """Add a secret to those accepted (the ones given before stay)."""
        with self._lock:
            if secret not in self._secrets:
                self._secrets.append(secret)
        self._ready.set()

    def _read_secret_again(self) -> bool:
        """Read the config's secret again, unless that was done a moment ago; True when a
        new one was added."""
        if self.refresh is None:
            return False
        with self._lock:
            if time.monotonic() - self.refreshed_at < REFRESH_SECONDS:
                return False
            self.refreshed_at = time.monotonic()
        try:
            secret = self.refresh()
        except ListenError as exc:
            say(f"note: could not read the config's secret again: {exc}", self.out)
            return False
        with self._lock:
            known = secret in self._secrets
        self.set_secret(secret)
        return not known

    def record(self, body: bytes, headers: Mapping[str, str]) -> Checked:
        self._ready.wait(SECRET_WAIT_SECONDS)
        checked = check(body, headers, list(self._secrets))
        if not checked.verified and self._read_secret_again():
            checked = check(body, headers, list(self._secrets))
        with self._lock:
            self.seen.append(checked)
            print(checked.line(), file=self.out, flush=True)
            if not checked.verified and not self._explained:
                self._explained = True
                say(self._why_not_verified(), self.out)
        return checked

    def _why_not_verified(self) -> str:
        whose = f"config {self.config_id}'s secret" if self.config_id else "the secrets it was given"
        return (
            f"note: this listener checks signatures with {whose} only: a delivery for another config"
            " (one made for this URL in the console or with curl, say) is NOT verified here, and so is"
            " anything not sent by the service; `make listen CONFIG=<that id>` checks another config's"
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the API, for the config's secret ------------------------------------------------------


@dataclass(frozen=True)
class Api:
    url: str
    token: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        # The standard library's client: the layer ships no HTTP library of its own.
        import http.client
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Authorization": f"Token {self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ListenError(f"the API's URL must be http or https, not {self.url}")
        url = self.url.rstrip("/") + path
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - checked above
        try:
            with urllib.request.urlopen(request, timeout=API_TIMEOUT) as response:  # noqa: S310 - checked above
                status, reason, raw = response.status, response.reason, response.read()
        except urllib.error.HTTPError as exc:  # an answer, not 2xx
            status, reason, raw = exc.code, exc.reason, exc.read()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = type(exc).__name__
            raise ListenError(f"cannot reach the API at {self.url} ({reason}); is make dev running?") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not 200 <= status < 300 or not isinstance(answer, dict):
            message = answer.get("message") if isinstance(answer, dict) else reason
            raise ListenError(f"{method} {path} answered {status}: {message}")
        return answer


def body_length(content_length: str | None, transfer_encoding: str | None) -> tuple[int, tuple[int, bytes] | None]:
    """The body's length to read, or the answer that refuses it unread: the service always
    sends a Content-Length of at most MAX_BODY (411 without one, 400 for one that is not a
    decimal count, 413 above the bound)."""
    if transfer_encoding is not None or content_length is None:
        return 0, (411, b"a Content-Length is required")
    text = content_length.strip()
    if not (text.isascii() and text.isdecimal()):
        return 0, (400, b"Content-Length is not a count of bytes")
    if len(text) > len(str(MAX_BODY)) or int(text) > MAX_BODY:
        return 0, (413, b"larger than any delivery")
    return int(text), None


def data_folder() -> Path:
    return Path(os.environ.get("DEVSTACK_DATA") or ".devstack")


def saved_by_dev() -> dict[str, Any]:
    """What `make dev` saved about the local stack (its URL and token), if anything."""
    path = data_folder() / persist.IDENTITY
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def resolve_api(url: str | None, token: str | None) -> Api:
    saved = saved_by_dev()
    url = url or os.environ.get("RICLOUD_URL") or saved.get("url") or DEFAULT_API
    token = token or os.environ.get("RICLOUD_TOKEN") or saved.get("token")
    if not token:
        raise ListenError("no token: give --token, set RICLOUD_TOKEN, or run `make dev` (it saves its token)")
    return Api(str(url), str(token))


def port_of(config_url: str) -> int | None:
    """The port a config's URL names on this machine, if it names one."""
    parts = urlsplit(config_url)
    if parts.scheme != "http" or parts.hostname not in _LOOPBACK_HOSTS:
        return None
    return parts.port or 80


def remember(api: Api, config_id: str) -> None:
    """Note the config listened for next to what `make dev` saved, when this listener speaks
    to that stack: `make env` gives it to the shell as ID (the README's lines use it)."""
    saved = saved_by_dev()
    if saved.get("url") and str(saved["url"]).rstrip("/") == api.url.rstrip("/"):
        path = data_folder() / persist.LISTENING
        with contextlib.suppress(OSError):  # a note for make env; listening does not depend on it
            persist.write_atomically(path, lambda handle: json.dump({"config": config_id, "url": api.url}, handle))


VALID_WAIT_SECONDS = 20.0  # a config's first test ends within the delivery timeout (15 s)


def wait_for_its_test(api: Api, config_id: str, out: TextIO) -> None:
    """After --create: say how the config's first test ended (bounded), so that whoever
    waits for the config to be `valid` can read it here."""
    deadline = time.monotonic() + VALID_WAIT_SECONDS
    state = "new"
    while time.monotonic() < deadline:
        state = str(api.call("GET", f"/configs/webhook/{config_id}")["state"])
        if state != "new":
            break
        time.sleep(0.2)
    say(f"config {config_id} is {state}", out)


def run(api: Api, port: int | None, config_id: str | None, create: bool, out: TextIO | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM; 0 when stopped, 1 when it could not start."""
    out = out or sys.stdout
    stopping = threading.Event()
    try:
        config = api.call("GET", f"/configs/webhook/{config_id}") if config_id else None
        if port is None:
            port = (port_of(config["url"]) if config else 0) or (DEFAULT_PORT if config else 0)
        listener = Listener(port, out)
        listener.start()
        if create:
            config = api.call("POST", "/configs/webhook", {"url": listener.url})
            say(f"created config {config['id']} -> {config['url']} (state {config['state']})", out)
    except ListenError as exc:
        say(f"listen: {exc}", sys.stderr)
        return 1
    assert config is not None
    path = f"/configs/webhook/{config['id']}"
    listener.config_id = str(config["id"])
    listener.refresh = lambda: str(api.call("GET", path)["secret"])
    listener.set_secret(str(config["secret"]))
    if port_of(str(config["url"])) != listener.port:
        say(f"note: config {config['id']} sends to {config['url']}, not to {listener.url}", out)
    say(f"listening on {listener.url} for config {config['id']}; Ctrl-C stops", out)
    remember(api, str(config["id"]))
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        if create:
            wait_for_its_test(api, str(config["id"]), out)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    except ListenError as exc:
        say(f"listen: {exc}", sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        listener.close()
    say(f"stopped after {len(listener.seen)} deliveries", out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.listen",
        description="A receiver on 127.0.0.1 that checks both signatures of each delivery and prints it (make listen).",
    )
    parser.add_argument("--port", type=int, help="default: the config's port on this machine, else any free one")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help="the config whose secret checks the deliveries")
    which.add_argument("--create", action="store_true", help="make a config that sends here")
    parser.add_argument("--api", help="the API's URL (default: $RICLOUD_URL, else what make dev saved)")
    parser.add_argument("--token", help="an API token (default: $RICLOUD_TOKEN, else what make dev saved)")
    args = parser.parse_args(argv)
    try:
        api = resolve_api(args.api, args.token)
    except ListenError as exc:
        say(f"listen: {exc}", sys.stderr)
        return 1
    return run(api, args.port, args.config, args.create)


if __name__ == "__main__":
    sys.exit(main())
