"""DELETE /configs/webhook/{id}: deactivate a config (it is kept for history)."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import configs


@endpoint
def handler(request: Request) -> Response:
    return Response(200, configs.delete_config(request.services, request.caller, request.path_param("id")))
