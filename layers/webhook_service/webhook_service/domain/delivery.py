"""What a receiver did with one delivery, and the codes its failures are recorded with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# Outcome codes of a delivery.
TIMEOUT = "webhook-timeout"
CONNECTION_FAILED = "webhook-connection-failed"
TLS_ERROR = "webhook-tls-error"
RESPONSE_STATUS = "webhook-response-status"
BLOCKED_TARGET = "webhook-blocked-target"
INTERNAL_ERROR = "internal-error"  # an attempt that failed on our side, not the receiver's
QUEUE_UNAVAILABLE = "queue-unavailable"  # a task or event the queue lost (docs/design.md §4.6)
EXCERPT_MAX_CHARS = 512  # of a response, as a task's result and an attempt keep it


@dataclass(frozen=True)
class DeliveryResult:
    """What a receiver did with one delivery."""

    error: str | None  # None: a 2xx in time
    status_code: int | None
    duration_ms: int
    response_excerpt: str
    retry_after: str | None = None  # the receiver's Retry-After header, unread

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_task_result(self) -> dict[str, Any]:
        return {
            "status_code": self.status_code,
            "duration_ms": self.duration_ms,
            "response_excerpt": printable(self.response_excerpt, EXCERPT_MAX_CHARS),
        }


def _escaped(character: str) -> str:
    """A character as it is stored: itself when printable, else `\\uXXXX`."""
    point = ord(character)
    hidden = (
        (point < 0x20 and character not in "\n\t")  # C0 controls: NUL, BEL, ESC, CR ...
        or 0x7F <= point <= 0x9F  # DEL and the C1 controls (U+009B opens a terminal sequence too)
        or point in _BIDI_AND_SEPARATORS
    )
    return f"\\u{point:04x}" if hidden else character


# Bidirectional marks, embeddings, overrides and isolates (text shown in another order than it
# is stored), and the line and paragraph separators (a new line where none is seen).
_BIDI_AND_SEPARATORS = frozenset(
    [0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)


def printable(text: str, limit: int | None = None) -> str:
    """What a receiver sent, as it is stored and shown: control characters, bidirectional
    overrides and isolates and line separators written as visible escapes (`\\u202e`);
    line feeds and tabs kept. At most `limit` characters, never cutting an escape."""
    pieces: list[str] = []
    size = 0
    for character in text if limit is None else text[:limit]:
        piece = _escaped(character)
        if limit is not None and size + len(piece) > limit:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces)


def is_http_status(status: int) -> bool:
    """Whether a status code is one HTTP has (100-599); any other is no HTTP answer."""
    return 100 <= status <= 599


def delivery_url(config_url: str, event_id: str) -> str:
    """The config's URL with the event id as one more path segment; the query is kept."""
    parts = urlsplit(config_url)
    path = parts.path.rstrip("/") + "/" + event_id
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
