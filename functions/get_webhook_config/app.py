"""GET /configs/webhook/{id}: one of the caller's configs."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    return Response(200, service.get_config(request.services, request.caller, request.path_param("id")))
