"""GET /key: the calling key."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import tenants


@endpoint
def handler(request: Request) -> Response:
    return Response(200, tenants.get_key(request.services, request.caller))
