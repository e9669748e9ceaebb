"""GET /configs/webhook/{id}: one of the caller's configs."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import configs


@endpoint
def handler(request: Request) -> Response:
    return Response(200, configs.get_config(request.services, request.caller, request.path_param("id")))
