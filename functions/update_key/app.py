"""POST /keys/{id}: set or clear a key's own webhook config (it overrides the organisation's default)."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    body = request.json()
    return Response(200, service.update_key(request.services, request.caller, request.path_param("id"), body))
