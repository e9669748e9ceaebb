"""DELETE /configs/webhook/{id}: deactivate a config (it is kept for history)."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    return Response(200, service.delete_config(request.services, request.caller, request.path_param("id")))
