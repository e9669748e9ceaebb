"""Validation of what users send: JSON bodies, fields, receiver URLs and list queries.

Every check runs before anything is written, and every failure is a ServiceError
(webhook_service.errors; httperrors answers it over HTTP).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from webhook_service.domain.configs import RATE_LIMIT_MAX
from webhook_service.domain.events import is_event_name
from webhook_service.domain.ids import is_uuid
from webhook_service.domain.queries import DEFAULT_LIMIT, ListQuery
from webhook_service.errors import InvalidBodyError, InvalidParameterError
from webhook_service.timefmt import parse_datetime

MAX_BODY_BYTES = 16 * 1024
MAX_URL_LENGTH = 2048
MAX_LIMIT = 1000
MAX_NUMBER_PARAMETER_CHARS = 10  # a numeric query parameter longer than this is refused unread
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
    expected = "an absolute https URL" if not allow_http else "an absolute http(s) URL"
    if isinstance(value, str) and len(value) > MAX_URL_LENGTH:
        raise InvalidParameterError(
            f"The url is longer than {MAX_URL_LENGTH} characters.",
            params={"url": f"must be at most {MAX_URL_LENGTH} characters"},
        )
    reason = _url_problem(value, ("https", "http") if allow_http else ("https",))
    if reason:
        raise InvalidParameterError(f"The url {reason}.", params={"url": f"must be {expected}"})
    return str(value)


def validate_rate_limit(value: Any) -> int | None:
    """A config's `rate_limit`: deliveries a second, a whole number from 1 to
    RATE_LIMIT_MAX, or null for none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= RATE_LIMIT_MAX:
        raise InvalidParameterError(
            f"rate_limit must be a whole number of deliveries a second from 1 to {RATE_LIMIT_MAX:,}, or null.",
            params={"rate_limit": f"must be an integer from 1 to {RATE_LIMIT_MAX} or null"},
        )
    return value


def _url_problem(value: Any, schemes: tuple[str, ...]) -> str | None:
    """Why `value` is not a receiver URL with one of `schemes` (None: it is one)."""
    if not isinstance(value, str):
        return "is not a string"
    if not value.isascii() or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return "contains spaces, control or non-ASCII characters"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "cannot be parsed"
    if parts.scheme not in schemes:
        return f"scheme {parts.scheme!r} is not allowed" if parts.scheme else "is not absolute"
    if "@" in parts.netloc:
        return "has user info"
    if "#" in value:
        return "has a fragment"
    if not _valid_host(parts.hostname or ""):
        return "has no valid host"
    return "has port 0" if port == 0 else None


def _valid_host(host: str) -> bool:
    if not host:
        return False
    if host.startswith("[") or ":" in host:
        return True  # an IPv6 literal; urlsplit has already checked its brackets
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


ANY_ID = "id"
ANY_NAME = "name"  # an event's type or action: domain.EVENT_NAME


def parse_list_query(params: dict[str, str], filters: dict[str, tuple[str, ...] | str]) -> ListQuery:
    """Parse list query parameters. `filters` maps each equality filter to its allowed
    values, or to ANY_ID (a UUID) or ANY_NAME (a lowercase name such as `webhook_config`).
    Unknown parameters are rejected."""
    found: dict[str, str] = {}
    bounds: dict[str, dt.datetime] = {}
    limit = DEFAULT_LIMIT
    cursors: dict[str, str] = {}
    for name, value in params.items():
        operator = _date_operator(name)
        if operator:
            _add_bound(bounds, operator, name, value)
        elif name == "limit":
            limit = _parse_limit(value)
        elif name in ("after_id", "before_id"):
            if not is_uuid(value):
                raise InvalidParameterError(f"{name} is not an id.", params={name: "must be an id"})
            cursors[name] = value
        elif name in filters:
            found[name] = _filter_value(name, value, filters[name])
        else:
            raise InvalidParameterError(f"Unknown query parameter {name!r}.", params={name: "unknown parameter"})
    return ListQuery(
        filters=found,
        date_bounds=bounds,
        limit=limit,
        after_id=cursors.get("after_id"),
        before_id=cursors.get("before_id"),
    )


def _date_operator(name: str) -> str | None:
    """`gt` of `date_created__gt` or `date_created[gt]`; None for any other parameter."""
    if name.startswith("date_created__") and name[len("date_created__") :] in DATE_OPERATORS:
        return name[len("date_created__") :]
    bracket = _BRACKET.match(name)
    return bracket.group(1) if bracket else None


def _add_bound(bounds: dict[str, dt.datetime], operator: str, name: str, value: str) -> None:
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


def _filter_value(name: str, value: str, allowed: tuple[str, ...] | str) -> str:
    if allowed == ANY_ID and not is_uuid(value):
        raise InvalidParameterError(f"{name} is not an id.", params={name: "must be an id"})
    if allowed == ANY_NAME and not is_event_name(value):
        raise InvalidParameterError(f"{name} is not a valid name.", params={name: "must be a lowercase name"})
    if isinstance(allowed, tuple) and value not in allowed:
        raise InvalidParameterError(
            f"{name} must be one of {', '.join(allowed)}.",
            params={name: f"must be one of {', '.join(allowed)}"},
        )
    return value


def _parse_limit(value: str) -> int:
    # The length first: int() refuses more than 4,300 digits (a ValueError, not an answer).
    # isdigit() alone accepts characters such as '²' that int() refuses.
    if len(value) > MAX_NUMBER_PARAMETER_CHARS or not (value.isascii() and value.isdigit()):
        raise _bad_limit()
    limit = int(value)
    if not 1 <= limit <= MAX_LIMIT:
        raise _bad_limit()
    return limit


def _bad_limit() -> InvalidParameterError:
    return InvalidParameterError(
        f"limit must be a whole number from 1 to {MAX_LIMIT}.", params={"limit": f"must be 1..{MAX_LIMIT}"}
    )


# -- event data --------------------------------------------------------------------------

MAX_DATA_DEPTH = 32  # objects and arrays, the data itself the first: DynamoDB's nesting limit
MAX_NUMBER_DIGITS = 38  # significant digits of a DynamoDB number
# A nonzero DynamoDB number lies within 1E-130 and 9.99...E+125 (either sign): its adjusted
# exponent (the power of ten of its first digit) is -130..125.
MIN_NUMBER_EXPONENT = -130
MAX_NUMBER_EXPONENT = 125
_MAX_INT_BITS = 420  # 2**420 > 1E+126: a longer int is out of range before str() (4,300 digits)
_MAX_PATH_CHARS = 120


class _DataProblemError(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem


def check_event_data(value: Any, max_string_chars: int) -> dict[str, Any]:
    """An event's data as it will be stored: a JSON object within DynamoDB's own limits for a
    map (no empty keys, at most 32 levels, numbers of at most 38 significant digits between
    1E-130 and 9.99...E+125 in size), with string keys and text that is valid Unicode. Floats
    and Decimals stay as given (webhook_service.jsontext writes them back exactly); tuples
    become lists; any other value (a datetime, a UUID) becomes its str().

    Raises InvalidParameterError naming the first problem and where it is, before anything
    is written. `max_string_chars` refuses a string that alone is longer than the data may be.
    """
    if not isinstance(value, Mapping):
        raise InvalidParameterError("The event is not valid.", params={"data": "must be a JSON object"})
    try:
        checked: dict[str, Any] = _check_value(value, "data", 1, max_string_chars)
    except _DataProblemError as exc:
        raise InvalidParameterError(
            f"The event's data is not valid at {exc.path}.", params={"data": f"{exc.problem} (at {exc.path})"}
        ) from None
    return checked


def _check_value(value: Any, path: str, depth: int, max_chars: int) -> Any:
    if isinstance(value, Mapping | list | tuple) and depth > MAX_DATA_DEPTH:
        raise _DataProblemError(path, f"objects and arrays nest deeper than {MAX_DATA_DEPTH} levels")
    if isinstance(value, Mapping):
        return _check_mapping(value, path, depth, max_chars)
    if isinstance(value, list | tuple):
        return [_check_value(item, _path(path, f"[{n}]"), depth + 1, max_chars) for n, item in enumerate(value)]
    return _check_scalar(value, path, max_chars)


def _check_mapping(value: Mapping[Any, Any], path: str, depth: int, max_chars: int) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise _DataProblemError(path, "object keys must be strings")
        if not key:
            raise _DataProblemError(path, "an object has an empty key")
        where = _path(path, "." + key[:40])
        checked[_text(key, where, max_chars)] = _check_value(item, where, depth + 1, max_chars)
    return checked


def _check_scalar(value: Any, path: str, max_chars: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _check_int(int(value), path)
    if isinstance(value, float | Decimal):
        return _check_decimal(value, path)
    if isinstance(value, str):
        return _text(value, path, max_chars)
    try:
        text = str(value)
    except Exception:  # a foreign __str__ failing is the caller's bad input
        raise _DataProblemError(path, f"a {type(value).__name__} is not JSON") from None
    return _text(text, path, max_chars)


def _path(parent: str, step: str) -> str:
    return (parent + step) if len(parent) < _MAX_PATH_CHARS else parent


def _text(value: str, path: str, max_chars: int) -> str:
    if len(value) > max_chars:
        raise _DataProblemError(path, f"a string is longer than the data may be ({max_chars} bytes)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _DataProblemError(path, "text must be valid Unicode (no lone surrogates)") from None
    return value


def _out_of_range(path: str) -> _DataProblemError:
    return _DataProblemError(path, "a number is out of range (1E-130 to 9.99E+125 in size, or 0)")


def _check_int(value: int, path: str) -> int:
    magnitude = abs(value)
    if magnitude.bit_length() > _MAX_INT_BITS:
        raise _out_of_range(path)
    digits = str(magnitude)
    if magnitude and len(digits) - 1 > MAX_NUMBER_EXPONENT:
        raise _out_of_range(path)
    if len(digits.rstrip("0")) > MAX_NUMBER_DIGITS:
        raise _DataProblemError(path, f"a number has more than {MAX_NUMBER_DIGITS} significant digits")
    return value


def _check_decimal(value: float | Decimal, path: str) -> float | Decimal:
    exact = Decimal(repr(value)) if isinstance(value, float) else value
    if not exact.is_finite():
        raise _DataProblemError(path, "a number must be finite (not NaN or Infinity)")
    if exact.is_zero():
        return value
    if not MIN_NUMBER_EXPONENT <= exact.adjusted() <= MAX_NUMBER_EXPONENT:
        raise _out_of_range(path)
    digits = "".join(map(str, exact.as_tuple().digits))
    if len(digits.rstrip("0")) > MAX_NUMBER_DIGITS:
        raise _DataProblemError(path, f"a number has more than {MAX_NUMBER_DIGITS} significant digits")
    return float(value) if isinstance(value, float) else value
