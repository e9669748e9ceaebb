"""The API's default route: any other method and path is 404 `not-found` in the error format (docs/design.md §2, §3)."""

from webhook_service.api import Request, Response, endpoint
from webhook_service.errors import NotFoundError


@endpoint
def handler(request: Request) -> Response:
    raise NotFoundError("route")
