"""GET /tasks: the caller's tasks, newest first, filtered by type, target and state."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    return Response(200, service.list_tasks(request.services, request.caller, request.query))
