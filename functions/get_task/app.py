"""GET /tasks/{id}: one of the caller's tasks."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import tasks


@endpoint
def handler(request: Request) -> Response:
    return Response(200, tasks.get_task(request.services, request.caller, request.path_param("id")))
