"""The service's errors, one class per failure of docs/design.md §3, with no HTTP in them.

They are raised by the library (validation, the service's use cases, `events.publish`) and
carry a message and, where useful, the params that name what is wrong. How each is answered
over HTTP (status and error code) is stated once, in webhook_service.httperrors.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A failure the caller is told about: a message and optional params."""

    def __init__(self, message: str, params: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


ApiError = ServiceError  # the name it had when it carried its HTTP status


class InvalidBodyError(ServiceError):
    """The request's body is not a JSON object the service reads."""


class InvalidParameterError(ServiceError):
    """A field or parameter has a value the service does not accept."""


class IdempotencyKeyReusedError(InvalidParameterError):
    """A publish named an idempotency key that its organisation used within the key's window
    for another request (another type, action, key or data): refused, naming
    `idempotency_key`, rather than answered with an event the caller did not ask for."""


class InvalidStateError(ServiceError):
    """The resource's state does not allow the action."""


class UnauthorizedError(ServiceError):
    """The caller is not authenticated."""


class NotFoundError(ServiceError):
    """No such resource (or not the caller's)."""

    def __init__(self, resource: str) -> None:
        super().__init__(f"No such {resource}.")


class LimitExceededError(ServiceError):
    """A fair-use limit is reached; `retry_after_seconds` says when to try again (whole
    seconds, at least 1)."""

    def __init__(self, message: str, params: dict[str, Any] | None = None, retry_after_seconds: int = 1) -> None:
        super().__init__(message, params)
        self.retry_after_seconds = max(1, retry_after_seconds)


class InternalError(ServiceError):
    """Something failed that should not have."""


class UnavailableError(ServiceError):
    """A dependency is unavailable; the action may be tried again."""


class ConflictError(Exception):
    """A conditional write lost a race; the service layer decides what that means.

    `reasons` holds, for a transaction, the cancellation code of each of its actions
    (`ConditionalCheckFailed` or `None`), in order; `item`, the item as it stood, when the
    write asked for it (`ReturnValuesOnConditionCheckFailure`)."""

    def __init__(
        self, message: str = "", reasons: list[str | None] | None = None, item: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.reasons = reasons or []
        self.item = item


class DependencyError(Exception):
    """A dependency (DynamoDB, SQS) failed (answered as UnavailableError)."""


class ThrottledError(DependencyError):
    """A dependency throttled us (answered as LimitExceededError)."""


class OpenTestsLimitError(Exception):
    """The organisation already has as many test tasks pending or processing as it may."""


class ConfigQuotaError(Exception):
    """The organisation already has as many configs not deactivated as it may (`cap`)."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"at most {cap} configs not deactivated")
        self.cap = cap


class UnknownCursorError(Exception):
    """`after_id` or `before_id` names nothing in this list."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name
