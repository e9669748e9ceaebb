"""GET /configs/webhook: the caller's configs, newest first; deactivated ones only on request."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import configs


@endpoint
def handler(request: Request) -> Response:
    return Response(200, configs.list_configs(request.services, request.caller, request.query))
