"""HTTP mapping for API Gateway HTTP API (payload v2): request parsing, authentication,
and the one place where errors become status codes and JSON error bodies."""

from __future__ import annotations

import base64
import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from webhook_service import jsontext, telemetry, wiring
from webhook_service.domain.limits import Admission
from webhook_service.domain.tenants import Principal
from webhook_service.errors import (
    DependencyError,
    InternalError,
    InvalidBodyError,
    LimitExceededError,
    ServiceError,
    ThrottledError,
    UnavailableError,
)
from webhook_service.httperrors import error_body, status
from webhook_service.logs import logger
from webhook_service.service import limits
from webhook_service.service.context import Services
from webhook_service.validation import MAX_BODY_BYTES, parse_json_body

LambdaEvent = dict[str, Any]
LambdaResponse = dict[str, Any]


@dataclass(frozen=True)
class Response:
    """What a handler answers: a status, a JSON body and any headers of its own."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    """What a handler needs of an API Gateway HTTP API event."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    path_params: dict[str, str]
    raw_body: bytes | None
    request_id: str
    services: Services
    caller: Principal
    arrived: dt.datetime  # when API Gateway received it: what "at once" means (resend, rotation)

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (docs/design.md §2); raises InvalidBodyError."""
        return parse_json_body(self.raw_body)

    def path_param(self, name: str) -> str:
        return self.path_params.get(name, "")


def _raw_body(event: LambdaEvent) -> bytes | None:
    body = event.get("body")
    if body is None:
        return None
    if len(body) > MAX_BODY_BYTES * 2:  # base64 or multi-byte text: still far too large
        raise InvalidBodyError(f"The body is larger than {MAX_BODY_BYTES} bytes.")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            raise InvalidBodyError("The body could not be decoded.") from None
    return str(body).encode("utf-8")


def _json_response(response: Response, request_id: str) -> LambdaResponse:
    headers = {"Content-Type": "application/json", "X-Request-Id": request_id}
    headers.update(response.headers)
    return {
        "statusCode": response.status,
        "headers": headers,
        # An event's data keeps its numbers' text; a final newline ends the answer as a line
        # (in a terminal, curl's output would run into the prompt). JSON allows it.
        "body": jsontext.dumps(response.body) + "\n",
    }


def error_response(error: ServiceError) -> Response:
    headers = {"Retry-After": str(error.retry_after_seconds)} if isinstance(error, LimitExceededError) else {}
    return Response(status(error), error_body(error), headers)


def rate_headers(admission: Admission) -> dict[str, str]:
    """The RateLimit header fields (IETF draft) of the organisation's API rate after this
    request: its burst, what is left of it now, and the seconds until it is full again."""
    return {
        "RateLimit-Limit": str(admission.limit),
        "RateLimit-Remaining": str(admission.remaining),
        "RateLimit-Reset": str(admission.reset_seconds),
    }


def _arrived(event: LambdaEvent, services: Services) -> dt.datetime:
    """When API Gateway received the request (`requestContext.timeEpoch`), else now."""
    epoch_ms = event.get("requestContext", {}).get("timeEpoch")
    if isinstance(epoch_ms, int) and not isinstance(epoch_ms, bool) and epoch_ms > 0:
        return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
    return services.clock()


def _admitted_call(action: Callable[[Request], Response], event: LambdaEvent, request_id: str) -> Response:
    """Authenticate, take one request's worth of the organisation's rate, then call; the
    answer, whatever it is, carries the rate's header fields."""
    http = event.get("requestContext", {}).get("http", {})
    services = wiring.services()
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    caller = services.authenticator.authenticate(headers.get("authorization"))
    logger.thread_safe_append_keys(organisation=caller.organisation, key_id=caller.key_id)
    admission = limits.admit(services, caller)
    if not admission.allowed:
        response = error_response(limits.refusal(admission))
    else:
        request = Request(
            method=http.get("method", ""),
            path=event.get("rawPath", ""),
            headers=headers,
            query=dict(event.get("queryStringParameters") or {}),
            path_params=dict(event.get("pathParameters") or {}),
            raw_body=None,
            request_id=request_id,
            services=services,
            caller=caller,
            arrived=_arrived(event, services),
        )
        response = _answered(action, request, event)
    return replace(response, headers={**response.headers, **rate_headers(admission)})


def _answered(action: Callable[[Request], Response], request: Request, event: LambdaEvent) -> Response:
    """The action's answer, or its error's."""
    try:
        request.raw_body = _raw_body(event)
        return action(request)
    except ServiceError as exc:
        return error_response(exc)


def endpoint(action: Callable[[Request], Response]) -> Callable[[LambdaEvent, Any], LambdaResponse]:
    """Make a Lambda handler of an action: authenticate, count the request against its
    organisation's rate (docs/design.md §18), call, and map every outcome, errors included,
    to a JSON response in the format of docs/design.md §3."""

    @functools.wraps(action)
    def handler(event: LambdaEvent, context: Any) -> LambdaResponse:
        http = event.get("requestContext", {}).get("http", {})
        request_id = event.get("requestContext", {}).get("requestId") or getattr(context, "aws_request_id", "-")
        logger.set_correlation_id(request_id)
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(route=event.get("routeKey", ""))
        try:
            response = _admitted_call(action, event, request_id)
        except ServiceError as exc:
            response = error_response(exc)
        except ThrottledError as exc:
            logger.warning("throttled by a dependency", extra={"reason": str(exc)})
            response = error_response(LimitExceededError("Too many requests; retry after a second."))
        except DependencyError as exc:
            logger.error("dependency failed", extra={"reason": str(exc)})
            response = error_response(UnavailableError("A service dependency is unavailable; try again."))
        except Exception:
            logger.exception("unhandled error")
            response = error_response(InternalError(f"Internal error; request id {request_id}."))
        logger.info("request handled", extra={"status": response.status, "method": http.get("method")})
        if response.status >= 500:
            telemetry.failure()  # the function's rollback alarm counts these
        telemetry.flush()
        return _json_response(response, request_id)

    return handler
