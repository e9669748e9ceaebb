"""GET /tasks: the caller's tasks, newest first, filtered by type, target and state."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import tasks


@endpoint
def handler(request: Request) -> Response:
    return Response(200, tasks.list_tasks(request.services, request.caller, request.query))
