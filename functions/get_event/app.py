"""GET /events/{id}: one of the caller's events."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    return Response(200, service.get_event(request.services, request.caller, request.path_param("id")))
