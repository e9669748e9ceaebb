"""POST /configs/webhook: create a config in state `new` and queue its test."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    return Response(201, service.create_config(request.services, request.caller, request.json()))
