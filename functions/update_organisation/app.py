"""POST /organisation: set or clear the organisation's default webhook config."""

from webhook_service import service
from webhook_service.api import Request, Response, endpoint


@endpoint
def handler(request: Request) -> Response:
    return Response(200, service.update_organisation(request.services, request.caller, request.json()))
