"""POST /configs/webhook/{id}: change a config's url and/or state, re-testing it when due."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    body = request.json()
    return Response(200, service.update_config(request.services, request.caller, request.path_param("id"), body))
