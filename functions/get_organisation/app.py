"""GET /organisation: the caller's organisation, its first configs and its derived state."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    return Response(200, service.get_organisation(request.services, request.caller))
