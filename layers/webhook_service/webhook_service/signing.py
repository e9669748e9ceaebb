"""Webhook signatures over the exact bytes sent (docs/design.md §7.4), and their verification
for receivers written in Python.

- `Ricloud-Signature: t=<unix seconds>,s=<base64 HMAC-SHA256(secret as UTF-8, "<t>.<body>")>`
  (what `ricloud.signing.Signature` verifies);
- Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature:
  v1,<base64 HMAC-SHA256(base64-decoded secret after whsec_, "<id>.<t>.<body>")>`.

While a rotated config's previous secret still signs (docs/design.md §14), each delivery
carries both: `webhook-signature` has two space-separated values (new secret first),
`Ricloud-Signature` stays signed with the previous secret (the one receivers have, and the
only one `ricloud.signing.Signature` can read, as it takes one signature per header), and
`Ricloud-Signature-Next` carries the same format signed with the new secret.

The verify helpers take one secret or several: a delivery verifies when any one matches. A
secret may be given in any form the Standard Webhooks libraries take (with or without `whsec_`,
with or without base64 padding).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """A delivery's signature is missing, malformed, wrong or too old."""


def _hmac_b64(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")


def _standard_key(secret: str) -> bytes:
    """The key bytes of a secret, in every form the Standard Webhooks libraries take: with or
    without `whsec_`, with or without base64 padding."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    if not key:
        raise ValueError("the secret is empty")
    return key


def _ricloud_forms(secret: str) -> list[str]:
    """The secret strings a ricloud signature may be keyed with, for a secret given in any
    of those forms: as given, and as the service writes it (`whsec_` and padded base64)."""
    try:
        written = SECRET_PREFIX + base64.b64encode(_standard_key(secret)).decode("ascii")
    except (ValueError, UnicodeError, TypeError):
        return [secret]
    return [secret] if written == secret else [secret, written]


def ricloud_signature(secret: str, timestamp: int, body: bytes) -> str:
    return _hmac_b64(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body)


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    return _hmac_b64(_standard_key(secret), f"{message_id}.{timestamp}.".encode() + body)


RICLOUD_NEXT_HEADER = "Ricloud-Signature-Next"


def signature_headers(
    secret: str,
    message_id: str,
    body: bytes,
    timestamp: int | None = None,
    *,
    previous_secret: str | None = None,
) -> dict[str, str]:
    """The headers that sign `body` in both schemes, at one timestamp; with
    `previous_secret` (a rotation's overlap), signed with both secrets."""
    t = int(time.time()) if timestamp is None else timestamp
    standard = f"v1,{standard_signature(secret, message_id, t, body)}"
    if previous_secret is None:
        return {
            "Ricloud-Signature": f"t={t},s={ricloud_signature(secret, t, body)}",
            "webhook-id": message_id,
            "webhook-timestamp": str(t),
            "webhook-signature": standard,
        }
    return {
        "Ricloud-Signature": f"t={t},s={ricloud_signature(previous_secret, t, body)}",
        RICLOUD_NEXT_HEADER: f"t={t},s={ricloud_signature(secret, t, body)}",
        "webhook-id": message_id,
        "webhook-timestamp": str(t),
        "webhook-signature": f"{standard} v1,{standard_signature(previous_secret, message_id, t, body)}",
    }


Secrets = str | Iterable[str]


def _secrets(secrets: Secrets) -> list[str]:
    """One secret or several, as a list; SignatureError when there is none."""
    found = [secrets] if isinstance(secrets, str) else list(secrets)
    if not found:
        raise SignatureError("no secret to verify with")
    return found


MAX_HEADER_CHARS = 8192  # far more than a few signatures need; longer is not ours
_TIMESTAMP_DIGITS = 12  # unix seconds until the year 33658; more would overflow a float


def _timestamp(text: str) -> int:
    """Unix seconds as the headers write them: ASCII digits only, and not too many (int()
    would accept '+1', ' 1', '1_0' and other scripts' digits, and overflow the age check)."""
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= _TIMESTAMP_DIGITS):
        raise SignatureError("the signature's timestamp is not unix seconds")
    return int(text)


def _header(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_HEADER_CHARS:
        raise SignatureError("a signature header is missing, not text or too long")
    return value


def _check_age(timestamp: int, tolerance: int, now: float | None) -> None:
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("the signature's timestamp is outside the tolerance")


def _matches(expected: str, given: str) -> bool:
    """Constant-time comparison of base64 text; anything not ASCII cannot match (and would
    make compare_digest raise TypeError)."""
    return given.isascii() and hmac.compare_digest(expected.encode("ascii"), given.encode("ascii"))


def verify_ricloud(
    body: bytes, header: str, secret: Secrets, tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None
) -> None:
    """Check a `Ricloud-Signature` (or `Ricloud-Signature-Next`) header against the raw
    request body, with one secret or several (any one may match).

    Raises SignatureError, and nothing else, for any header, body or secret that does not
    verify: missing or malformed parts, non-ASCII text, oversized headers, a secret that
    cannot be used."""
    try:
        fields = dict(part.split("=", 1) for part in _header(header).split(","))
        timestamp = _timestamp(fields["t"])
        given = fields["s"]
        expected = [
            ricloud_signature(form, timestamp, bytes(body)) for s in _secrets(secret) for form in _ricloud_forms(s)
        ]
    except SignatureError:
        raise
    except (ValueError, KeyError, TypeError, UnicodeError, AttributeError):
        raise SignatureError("malformed Ricloud-Signature header, body or secret") from None
    if not any(_matches(e, given) for e in expected):
        raise SignatureError("the Ricloud-Signature does not match")
    _check_age(timestamp, tolerance, now)


def verify_ricloud_headers(
    body: bytes,
    headers: Mapping[str, str],
    secret: Secrets,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a delivery's ricloud signatures (headers in any case) with one secret or
    several: `Ricloud-Signature`, and during a rotation's overlap `Ricloud-Signature-Next`
    too, so a receiver that already has the new secret verifies as one that does not.
    Raises SignatureError (the first header's reason) when neither verifies."""
    lowered = {k.lower(): v for k, v in headers.items() if isinstance(k, str)}
    try:
        verify_ricloud(body, lowered.get("ricloud-signature", ""), secret, tolerance, now)
    except SignatureError:
        following = lowered.get(RICLOUD_NEXT_HEADER.lower())
        if following is None:
            raise
        try:
            verify_ricloud(body, following, secret, tolerance, now)
        except SignatureError:
            pass
        else:
            return
        raise


def verify_standard(
    body: bytes,
    headers: Mapping[str, str],
    secret: Secrets,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check Standard Webhooks headers (any case) against the raw body, with one secret or
    several: it verifies when any `v1` signature matches any secret.

    Raises SignatureError, and nothing else, for any headers, body or secret that do not
    verify (see verify_ricloud)."""
    try:
        lowered = {k.lower(): v for k, v in headers.items() if isinstance(k, str)}
        message_id = _header(lowered["webhook-id"])
        timestamp = _timestamp(_header(lowered["webhook-timestamp"]))
        signatures = _header(lowered["webhook-signature"]).split()
        expected = [standard_signature(s, message_id, timestamp, bytes(body)) for s in _secrets(secret)]
    except SignatureError:
        raise
    except (KeyError, ValueError, TypeError, UnicodeError, AttributeError):
        raise SignatureError("missing or malformed webhook-* headers, body or secret") from None
    if not any(
        version == "v1" and _matches(e, given)
        for version, _, given in (s.partition(",") for s in signatures)
        for e in expected
    ):
        raise SignatureError("no webhook-signature matches")
    _check_age(timestamp, tolerance, now)
