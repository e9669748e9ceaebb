"""The delivery queue's consumer: a batch of jobs run concurrently, with a partial batch
response so that only the jobs that failed for our own reasons come back."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from webhook_service.deliver import get_deliverer, handle_job
from webhook_service.logs import logger

MAX_BATCH = 10  # the event source's batch size: every job of a batch gets its own thread
_executor = ThreadPoolExecutor(max_workers=MAX_BATCH, thread_name_prefix="deliver")


def _run(record: SQSRecord) -> str:
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(
        message_id=record.message_id, receive_count=record.attributes.approximate_receive_count
    )
    try:
        outcome = handle_job(get_deliverer(), record.body)
    except Exception:
        logger.exception("job failed; it will be retried")
        raise
    return outcome


async def _handle_record(record: SQSRecord) -> str:
    return await asyncio.get_running_loop().run_in_executor(_executor, _run, record)


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    processor = AsyncBatchProcessor(event_type=EventType.SQS)
    response = async_process_partial_response(
        event=event, record_handler=_handle_record, processor=processor, context=context
    )
    return dict(response)
