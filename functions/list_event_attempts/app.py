"""GET /events/{id}/attempts: every request sent for one of the caller's events, newest first."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import events


@endpoint
def handler(request: Request) -> Response:
    return Response(
        200, events.list_attempts(request.services, request.caller, request.path_param("id"), request.query)
    )
