"""Validation of what users send: JSON bodies, fields, receiver URLs and list queries.

Every check runs before anything is written, and every failure is an ApiError.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from webhook_service.domain import is_uuid
from webhook_service.errors import InvalidBodyError, InvalidParameterError
from webhook_service.timefmt import parse_datetime

MAX_BODY_BYTES = 16 * 1024
MAX_URL_LENGTH = 2048
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
DATE_OPERATORS = ("gt", "gte", "lt", "lte")
_BRACKET = re.compile(r"^date_created\[(gt|gte|lt|lte)\]$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def parse_json_body(raw: bytes | None) -> dict[str, Any]:
    """A request body as a JSON object; no body and a literal `null` both mean `{}`."""
    if raw is None or not raw.strip():
        return {}
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidBodyError(f"The body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        value = json.loads(raw, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidBodyError(f"The body is not valid JSON: {_json_reason(exc)}.") from None
    except RecursionError:  # a few KiB of `[` nest deeper than the decoder can go
        raise InvalidBodyError("The body is nested too deeply.") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidBodyError("The body must be a JSON object.")
    return value


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate field {name!r}")
        result[name] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8"
    return str(exc)


def check_fields(body: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """Reject unknown and missing fields, naming each in `params`."""
    problems = {name: "unknown field" for name in body if name not in allowed}
    problems.update({name: "required" for name in required if name not in body})
    if problems:
        unknown = [name for name, why in problems.items() if why == "unknown field"]
        message = f"Unknown field {unknown[0]!r}." if unknown else f"Missing field {next(iter(problems))!r}."
        raise InvalidParameterError(message, params=problems)


def validate_url(value: Any, *, allow_http: bool) -> str:
    """A receiver URL: absolute, https (http only where private targets are allowed),
    a host, no user info, no fragment, at most 2048 characters."""
    schemes = ("https", "http") if allow_http else ("https",)
    expected = "an absolute https URL" if not allow_http else "an absolute http(s) URL"

    def bad(reason: str) -> InvalidParameterError:
        return InvalidParameterError(f"The url {reason}.", params={"url": f"must be {expected}"})

    if not isinstance(value, str):
        raise bad("is not a string")
    if len(value) > MAX_URL_LENGTH:
        raise InvalidParameterError(
            f"The url is longer than {MAX_URL_LENGTH} characters.",
            params={"url": f"must be at most {MAX_URL_LENGTH} characters"},
        )
    if not value.isascii() or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise bad("contains spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise bad("cannot be parsed") from None
    if parts.scheme not in schemes:
        raise bad(f"scheme {parts.scheme!r} is not allowed" if parts.scheme else "is not absolute")
    if "@" in parts.netloc:
        raise bad("has user info")
    if "#" in value:
        raise bad("has a fragment")
    host = parts.hostname or ""
    if not host or not _valid_host(host):
        raise bad("has no valid host")
    if port == 0:
        raise bad("has port 0")
    return value


def _valid_host(host: str) -> bool:
    if host.startswith("[") or ":" in host:
        return True  # an IPv6 literal; urlsplit has already checked its brackets
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


@dataclass(frozen=True)
class ListQuery:
    """A list request: equality filters, a date range, a page size and cursors."""

    filters: dict[str, str] = field(default_factory=dict)
    date_bounds: dict[str, dt.datetime] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT
    after_id: str | None = None
    before_id: str | None = None


ANY_ID = "id"
ANY_NAME = "name"
_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")


def parse_list_query(params: dict[str, str], filters: dict[str, tuple[str, ...] | str]) -> ListQuery:
    """Parse list query parameters. `filters` maps each equality filter to its allowed
    values, or to ANY_ID (a UUID) or ANY_NAME (a lowercase name such as `webhook_config`).
    Unknown parameters are rejected."""
    found: dict[str, str] = {}
    bounds: dict[str, dt.datetime] = {}
    limit = DEFAULT_LIMIT
    cursors: dict[str, str] = {}
    for name, value in params.items():
        bracket = _BRACKET.match(name)
        operator = bracket.group(1) if bracket else None
        if name.startswith("date_created__") and name[len("date_created__") :] in DATE_OPERATORS:
            operator = name[len("date_created__") :]
        if operator:
            if operator in bounds:
                raise InvalidParameterError(
                    f"date_created__{operator} is given twice.",
                    params={name: "given more than once (directly and as an alias)"},
                )
            try:
                bounds[operator] = parse_datetime(value)
            except ValueError:
                raise InvalidParameterError(
                    f"{name} is not an ISO 8601 datetime or date.",
                    params={name: "must be an ISO 8601 datetime or date"},
                ) from None
        elif name == "limit":
            limit = _parse_limit(value)
        elif name in ("after_id", "before_id"):
            if not is_uuid(value):
                raise InvalidParameterError(f"{name} is not an id.", params={name: "must be an id"})
            cursors[name] = value
        elif name in filters:
            allowed = filters[name]
            if allowed == ANY_ID and not is_uuid(value):
                raise InvalidParameterError(f"{name} is not an id.", params={name: "must be an id"})
            if allowed == ANY_NAME and not _NAME.match(value):
                raise InvalidParameterError(f"{name} is not a valid name.", params={name: "must be a lowercase name"})
            if isinstance(allowed, tuple) and value not in allowed:
                raise InvalidParameterError(
                    f"{name} must be one of {', '.join(allowed)}.",
                    params={name: f"must be one of {', '.join(allowed)}"},
                )
            found[name] = value
        else:
            raise InvalidParameterError(f"Unknown query parameter {name!r}.", params={name: "unknown parameter"})
    return ListQuery(
        filters=found,
        date_bounds=bounds,
        limit=limit,
        after_id=cursors.get("after_id"),
        before_id=cursors.get("before_id"),
    )


def _parse_limit(value: str) -> int:
    # isdigit() alone accepts characters such as '²' that int() refuses
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidParameterError(
            f"limit must be a whole number from 1 to {MAX_LIMIT}.", params={"limit": f"must be 1..{MAX_LIMIT}"}
        )
    return int(value)
