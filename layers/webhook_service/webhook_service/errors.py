"""The API's errors: one exception per error code of docs/design.md §3, each knowing its HTTP status."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the API answers with `{"error", "message", "params"}`."""

    status = 500
    code = "internal-error"

    def __init__(self, message: str, params: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.params = params

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.params:
            body["params"] = self.params
        return body


class InvalidBodyError(ApiError):
    status = 400
    code = "invalid-body"


class InvalidParameterError(ApiError):
    status = 400
    code = "invalid-parameter"


class InvalidStateError(ApiError):
    status = 400
    code = "invalid-state"


class UnauthorizedError(ApiError):
    status = 401
    code = "unauthorized"


class NotFoundError(ApiError):
    status = 404
    code = "not-found"

    def __init__(self, resource: str) -> None:
        super().__init__(f"No such {resource}.")


class LimitExceededError(ApiError):
    status = 429
    code = "limit-exceeded"


class InternalError(ApiError):
    status = 500
    code = "internal-error"


class UnavailableError(ApiError):
    status = 503
    code = "unavailable"


class ConflictError(Exception):
    """A conditional write lost a race; the service layer decides what that means.

    `reasons` holds, for a transaction, the cancellation code of each of its actions
    (`ConditionalCheckFailed` or `None`), in order."""

    def __init__(self, message: str = "", reasons: list[str | None] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or []


class DependencyError(Exception):
    """A dependency (DynamoDB, SQS) failed; answered as 503 `unavailable`."""


class ThrottledError(DependencyError):
    """A dependency throttled us; answered as 429 `limit-exceeded`."""


class OpenTestsLimitError(Exception):
    """The organisation already has as many test tasks pending or processing as it may."""
