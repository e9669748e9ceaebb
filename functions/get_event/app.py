"""GET /events/{id}: one of the caller's events."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import events


@endpoint
def handler(request: Request) -> Response:
    return Response(200, events.get_event(request.services, request.caller, request.path_param("id")))
