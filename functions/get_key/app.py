"""GET /key: the calling key."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    return Response(200, service.get_key(request.services, request.caller))
