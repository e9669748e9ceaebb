"""The one mapping from the service's errors (webhook_service.errors) to HTTP: each class's
status and error code, and the body `{"error", "message", "params"}` of docs/design.md §3."""

from __future__ import annotations

from typing import Any

from webhook_service.errors import (
    IdempotencyKeyReusedError,
    InternalError,
    InvalidBodyError,
    InvalidParameterError,
    InvalidStateError,
    LimitExceededError,
    NotFoundError,
    ServiceError,
    UnauthorizedError,
    UnavailableError,
)

# Each error class, its status and its error code; a subclass takes its nearest listed base's.
STATUS_AND_CODE: dict[type[ServiceError], tuple[int, str]] = {
    InvalidBodyError: (400, "invalid-body"),
    InvalidParameterError: (400, "invalid-parameter"),
    IdempotencyKeyReusedError: (400, "invalid-parameter"),  # publishing's own: no HTTP route raises it
    InvalidStateError: (400, "invalid-state"),
    UnauthorizedError: (401, "unauthorized"),
    NotFoundError: (404, "not-found"),
    LimitExceededError: (429, "limit-exceeded"),
    InternalError: (500, "internal-error"),
    UnavailableError: (503, "unavailable"),
    ServiceError: (500, "internal-error"),
}


def status_and_code(error: ServiceError) -> tuple[int, str]:
    """The HTTP status and the error code an error is answered with."""
    for cls in type(error).__mro__:
        if cls in STATUS_AND_CODE:
            return STATUS_AND_CODE[cls]
    return STATUS_AND_CODE[ServiceError]  # pragma: no cover - every error is a ServiceError


def status(error: ServiceError) -> int:
    return status_and_code(error)[0]


def code(error: ServiceError) -> str:
    return status_and_code(error)[1]


def error_body(error: ServiceError) -> dict[str, Any]:
    """The JSON body an error is answered with."""
    body: dict[str, Any] = {"error": code(error), "message": error.message}
    if error.params:
        body["params"] = error.params
    return body
