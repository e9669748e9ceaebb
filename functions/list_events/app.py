"""GET /events: the caller's events, newest first, filtered by type, action and state."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    return Response(200, service.list_events(request.services, request.caller, request.query))
