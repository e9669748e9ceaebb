"""POST /events/{id}/resend: deliver an ended event again, with the same id."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import events


@endpoint
def handler(request: Request) -> Response:
    body = request.json()
    return Response(
        200,
        events.resend_event(request.services, request.caller, request.path_param("id"), body, arrived=request.arrived),
    )
