"""POST /configs/webhook/{id}: change a config's url and/or state, re-testing it when due."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import configs


@endpoint
def handler(request: Request) -> Response:
    body = request.json()
    return Response(200, configs.update_config(request.services, request.caller, request.path_param("id"), body))
