"""POST /configs/webhook: create a config in state `new` and queue its test."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import configs


@endpoint
def handler(request: Request) -> Response:
    return Response(201, configs.create_config(request.services, request.caller, request.json()))
