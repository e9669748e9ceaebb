"""The delivery queue's consumer: runs test tasks (signed deliveries) and writes back state."""

from typing import Any

from webhook_service.consumer import handle_batch


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_batch(event, context)
