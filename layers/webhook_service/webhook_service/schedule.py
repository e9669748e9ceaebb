"""The sweep function's entry point: one run of the overdue sweep (webhook_service.sweep) on
the process's services, with its metrics and a summary log line."""

from __future__ import annotations

import datetime as dt
from typing import Any

from webhook_service import telemetry, wiring
from webhook_service.jobqueue import DeadLetterQueue
from webhook_service.logs import logger
from webhook_service.settings import get_settings
from webhook_service.sweep import sweep


def run_sweep(event: dict[str, Any], context: Any) -> dict[str, int]:
    logger.set_correlation_id(getattr(context, "aws_request_id", "-"))
    logger.thread_safe_clear_keys()
    services = wiring.services()
    settings = get_settings()
    after = dt.timedelta(minutes=settings.sweep_after_minutes)
    dead_letters = DeadLetterQueue(settings.dead_letter_queue) if settings.dead_letter_queue else None
    remaining = getattr(context, "get_remaining_time_in_millis", None)

    def time_left() -> float:
        return float(remaining()) / 1000 if remaining else float("inf")

    try:
        done = sweep(
            services.store,
            services.queue,
            services.clock(),
            after,
            services.test_queue,
            time_left if remaining else None,
            dead_letters,
        )
        telemetry.overdue(done)
    finally:
        telemetry.flush()
    summary = {f"{kind}s_{action}": count for (kind, action), count in sorted(done.items())}
    logger.info("sweep done", extra=summary)
    return summary
