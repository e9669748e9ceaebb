"""Publishing once per idempotency key: what a key may be, how long it holds, and the claim
that ties it to the first event published with it (docs/design.md §7.8)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any

from webhook_service.domain.events import Event

IDEMPOTENCY_WINDOW = dt.timedelta(hours=24)  # a key names its first event for at least this long
MAX_IDEMPOTENCY_KEY_CHARS = 255

# Printable ASCII, the space included: what an HTTP header or a command-line argument carries
# without escaping, so a key a publisher logs is the key it sent.
_IDEMPOTENCY_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}")

_WINDOW_HOURS = int(IDEMPOTENCY_WINDOW.total_seconds()) // 3600
KEY_REUSED = f"was used within {_WINDOW_HOURS} hours for another request (another type, action, key or data)"
KEY_RULE = f"must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"


def is_idempotency_key(value: object) -> bool:
    """1 to 255 printable ASCII characters (space to `~`)."""
    return isinstance(value, str) and _IDEMPOTENCY_KEY.fullmatch(value) is not None


def in_key_order(value: Any) -> Any:
    """`value` with every object's fields in sorted order, at any depth: two publishes of the
    same data whose fields came in another order are the same request."""
    if isinstance(value, dict):
        return {name: in_key_order(value[name]) for name in sorted(value)}
    if isinstance(value, list):
        return [in_key_order(item) for item in value]
    return value


def request_fingerprint(type_: str, action: str, key: str | None, data_text: str) -> str:
    """What a publish asked for, as a hash: two requests are the same when their type, action,
    key and data (its JSON text as stored, secret-like fields dropped, fields in key order:
    `in_key_order`) are."""
    request = json.dumps([type_, action, key, data_text], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(request.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IdempotencyClaim:
    """An idempotency key's hold on the first event published with it, in its organisation:
    the event's id and creation time (so that any publisher can finish that event), the
    request that made it, and the unix time from which the key is free again."""

    event_id: str
    request: str  # request_fingerprint of the first publish
    date_created: dt.datetime  # the event's
    expires_at: int

    def age(self, now: dt.datetime) -> dt.timedelta:
        return now - self.date_created


def claim_for(event: Event, request: str) -> IdempotencyClaim:
    """The claim a new event makes on its key: it holds until at least IDEMPOTENCY_WINDOW after
    the event was created (rounded up to the whole second that DynamoDB's TTL counts in)."""
    return IdempotencyClaim(
        event_id=event.id,
        request=request,
        date_created=event.date_created,
        expires_at=math.ceil((event.date_created + IDEMPOTENCY_WINDOW).timestamp()),
    )


def unix_seconds(now: dt.datetime) -> int:
    """The whole second `now` is in, as a claim's `expires_at` is compared with it."""
    return math.floor(now.timestamp())


def is_expired(expires_at: int, now: dt.datetime) -> bool:
    """A claim no longer holds from its `expires_at` on (the condition its replacement is
    written with): DynamoDB's TTL deletes it later, up to days later, so a claim read back
    must be tested with this, never taken as holding because it is still there."""
    return unix_seconds(now) >= expires_at


def claimed_event(claim: IdempotencyClaim, request: Event) -> Event:
    """The event a claim names, made again from a publish of the same request: same id and
    creation time, so storing it again changes nothing and its jobs are the same event's."""
    return replace(request, id=claim.event_id, date_created=claim.date_created)
