"""DynamoDB's attribute values to and from plain Python values, and DynamoDB's errors as
the service's own (throttling, conflicts, other dependency failures)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from webhook_service.errors import ConflictError, DependencyError, ThrottledError

Item = dict[str, Any]

_THROTTLING_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ThrottlingError",
}


def _to_attr(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes):
        return {"B": value}
    if isinstance(value, dict):
        return {"M": {k: _to_attr(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"L": [_to_attr(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__}")


def _from_attr(attr: dict[str, Any]) -> Any:
    ((kind, value),) = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        return int(value)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "B":
        return bytes(value)
    if kind == "M":
        return {k: _from_attr(v) for k, v in value.items()}
    if kind == "L":
        return [_from_attr(v) for v in value]
    raise TypeError(f"unexpected attribute type {kind}")


def marshal(item: Item) -> dict[str, Any]:
    return {k: _to_attr(v) for k, v in item.items()}


def unmarshal(item: dict[str, Any]) -> Item:
    return {k: _from_attr(v) for k, v in item.items()}


@contextlib.contextmanager
def dynamodb_errors() -> Iterator[None]:
    """Turn boto errors into the service's: throttling, conflicts and dependency failures."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        reasons = [r.get("Code", "") for r in exc.response.get("CancellationReasons", []) or []]
        if code == "ConditionalCheckFailedException" or "ConditionalCheckFailed" in reasons:
            stood: Any = exc.response.get("Item")  # with ReturnValuesOnConditionCheckFailure
            cause = [r if r and r != "None" else None for r in reasons]
            raise ConflictError(code, cause, unmarshal(stood) if isinstance(stood, dict) else None) from exc
        if code in _THROTTLING_CODES or _THROTTLING_CODES.intersection(reasons):
            raise ThrottledError(code) from exc
        raise DependencyError(code) from exc
    except BotoCoreError as exc:
        raise DependencyError(type(exc).__name__) from exc
