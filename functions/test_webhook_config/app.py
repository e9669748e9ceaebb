"""POST /configs/webhook/{id}/test: queue a test of a config and answer with its task."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    body = request.json()
    return Response(201, service.queue_config_test(request.services, request.caller, request.path_param("id"), body))
