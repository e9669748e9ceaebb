"""POST /organisation: set or clear the organisation's default webhook config."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.service import tenants


@endpoint
def handler(request: Request) -> Response:
    return Response(200, tenants.update_organisation(request.services, request.caller, request.json()))
