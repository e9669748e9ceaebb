"""POST /configs/webhook/{id}/recover: resend a config's failed events of a window, as one task."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import recovery


@endpoint
def handler(request: Request) -> Response:
    body = request.json()
    return Response(201, recovery.recover_config(request.services, request.caller, request.path_param("id"), body))
