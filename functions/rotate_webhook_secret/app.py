"""POST /configs/webhook/{id}/rotate_secret: a new secret, the old one signing for an overlap."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    body = request.json()
    return Response(200, service.rotate_secret(request.services, request.caller, request.path_param("id"), body))
