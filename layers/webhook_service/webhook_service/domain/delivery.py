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
            "response_excerpt": self.response_excerpt,
        }


def delivery_url(config_url: str, event_id: str) -> str:
    """The config's URL with the event id as one more path segment; the query is kept."""
    parts = urlsplit(config_url)
    path = parts.path.rstrip("/") + "/" + event_id
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
