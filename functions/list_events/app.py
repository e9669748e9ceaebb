"""GET /events: the caller's events, newest first, filtered by type, action and state."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import events


@endpoint
def handler(request: Request) -> Response:
    return Response(200, events.list_events(request.services, request.caller, request.query))
