"""POST /configs/webhook/{id}/test: queue a test of a config and answer with its task."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import configs


@endpoint
def handler(request: Request) -> Response:
    body = request.json()
    return Response(201, configs.queue_config_test(request.services, request.caller, request.path_param("id"), body))
