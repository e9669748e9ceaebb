"""POST /keys/{id}: set or clear a key's own webhook config (it overrides the organisation's default)."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import tenants


@endpoint
def handler(request: Request) -> Response:
    body = request.json()
    return Response(200, tenants.update_key(request.services, request.caller, request.path_param("id"), body))
