"""GET /events/{id}/attempts: every request sent for one of the caller's events, newest first."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    return Response(
        200, service.list_attempts(request.services, request.caller, request.path_param("id"), request.query)
    )
