"""Webhook signatures over the exact bytes sent (SPEC section 7), and their verification
for receivers written in Python.

- `Ricloud-Signature: t=<unix seconds>,s=<base64 HMAC-SHA256(secret as UTF-8, "<t>.<body>")>`
  (what `ricloud.signing.Signature` verifies);
- Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature:
  v1,<base64 HMAC-SHA256(base64-decoded secret after whsec_, "<id>.<t>.<body>")>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """A delivery's signature is missing, malformed, wrong or too old."""


def _hmac_b64(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")


def _standard_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def ricloud_signature(secret: str, timestamp: int, body: bytes) -> str:
    return _hmac_b64(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body)


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    return _hmac_b64(_standard_key(secret), f"{message_id}.{timestamp}.".encode() + body)


def signature_headers(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers that sign `body` in both schemes, at one timestamp."""
    t = int(time.time()) if timestamp is None else timestamp
    return {
        "Ricloud-Signature": f"t={t},s={ricloud_signature(secret, t, body)}",
        "webhook-id": message_id,
        "webhook-timestamp": str(t),
        "webhook-signature": f"v1,{standard_signature(secret, message_id, t, body)}",
    }


def _check_age(timestamp: int, tolerance: int, now: float | None) -> None:
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("the signature's timestamp is outside the tolerance")


def verify_ricloud(
    body: bytes, header: str, secret: str, tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None
) -> None:
    """Check a `Ricloud-Signature` header against the raw request body; raise SignatureError."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["s"]
    except (ValueError, KeyError):
        raise SignatureError("malformed Ricloud-Signature header") from None
    if not hmac.compare_digest(ricloud_signature(secret, timestamp, body), given):
        raise SignatureError("the Ricloud-Signature does not match")
    _check_age(timestamp, tolerance, now)


def verify_standard(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check Standard Webhooks headers (any case) against the raw body; raise SignatureError."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
    except (KeyError, ValueError):
        raise SignatureError("missing or malformed webhook-* headers") from None
    expected = standard_signature(secret, message_id, timestamp, body)
    if not any(
        version == "v1" and hmac.compare_digest(expected, given)
        for version, _, given in (s.partition(",") for s in signatures)
    ):
        raise SignatureError("no webhook-signature matches")
    _check_age(timestamp, tolerance, now)
