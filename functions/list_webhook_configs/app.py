"""GET /configs/webhook: the caller's configs, newest first; deactivated ones only on request."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    return Response(200, service.list_configs(request.services, request.caller, request.query))
