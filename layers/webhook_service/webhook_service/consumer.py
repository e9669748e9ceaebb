"""The delivery queue's consumer: a batch of jobs run concurrently, with a partial batch
response so that only the jobs that failed for our own reasons come back."""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response

from webhook_service import telemetry
from webhook_service.deliver import Outcome, get_deliverer, handle_job
from webhook_service.logs import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

MAX_BATCH = 10  # the event source's batch size: every job of a batch gets its own thread
_executor = ThreadPoolExecutor(max_workers=MAX_BATCH, thread_name_prefix="deliver")


def _run(record: SQSRecord, request_id: str) -> Outcome:
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(
        correlation_id=request_id,
        message_id=record.message_id,
        receive_count=record.attributes.approximate_receive_count,
    )
    try:
        return handle_job(get_deliverer(), record.body)
    except Exception:
        logger.exception("job failed; it will be retried")
        raise


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run a batch; afterwards, write its metrics from this thread (Powertools' metric set
    is not for concurrent use)."""
    request_id = getattr(context, "aws_request_id", "-")
    ended: list[Outcome] = []

    async def handle_record(record: SQSRecord) -> str:
        outcome = await asyncio.get_running_loop().run_in_executor(_executor, _run, record, request_id)
        ended.append(outcome)
        return outcome.name

    processor = AsyncBatchProcessor(event_type=EventType.SQS)
    try:
        response = async_process_partial_response(
            event=event, record_handler=handle_record, processor=processor, context=context
        )
    finally:
        _write_metrics(ended)
    return dict(response)


def _write_metrics(ended: list[Outcome]) -> None:
    telemetry.outcomes(Counter((o.kind, o.name) for o in ended))
    telemetry.durations(telemetry.DELIVERY_DURATION, [o.duration_ms for o in ended if o.duration_ms is not None])
    failed = sum(1 for o in ended if o.failed_for_good)
    if failed:
        telemetry.count(telemetry.EVENTS_FAILED, failed)
    telemetry.flush()
