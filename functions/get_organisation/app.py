"""GET /organisation: the caller's organisation, its first configs and its derived state."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import tenants


@endpoint
def handler(request: Request) -> Response:
    return Response(200, tenants.get_organisation(request.services, request.caller))
