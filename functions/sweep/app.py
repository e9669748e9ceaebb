"""On a schedule: queues again, then ends, the tasks and events whose job was lost
(webhook_service.sweep)."""

from typing import Any

from webhook_service.schedule import run_sweep


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    return run_sweep(event, context)
