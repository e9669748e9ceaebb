"""POST /configs/webhook/{id}/rotate_secret: a new secret, the old one signing for an overlap."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import configs


@endpoint
def handler(request: Request) -> Response:
    body = request.json()
    return Response(
        200,
        configs.rotate_secret(
            request.services, request.caller, request.path_param("id"), body, arrived=request.arrived
        ),
    )
