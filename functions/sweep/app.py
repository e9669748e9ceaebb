"""On a schedule: queues again, then ends, the tasks and events whose job was lost
(webhook_service.sweep)."""

import datetime as dt
from typing import Any

from webhook_service import telemetry
from webhook_service.logs import logger
from webhook_service.service import get_services
from webhook_service.settings import get_settings
from webhook_service.sweep import sweep


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    logger.set_correlation_id(getattr(context, "aws_request_id", "-"))
    logger.thread_safe_clear_keys()
    services = get_services()
    after = dt.timedelta(minutes=get_settings().sweep_after_minutes)
    try:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        time_left = (lambda: remaining() / 1000) if remaining else None
        done = sweep(services.store, services.queue, services.clock(), after, services.test_queue, time_left)
        telemetry.overdue(done)
    finally:
        telemetry.flush()
    summary = {f"{kind}s_{action}": count for (kind, action), count in sorted(done.items())}
    logger.info("sweep done", extra=summary)
    return summary
