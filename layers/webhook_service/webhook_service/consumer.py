"""The delivery queues' consumer: a batch of jobs run concurrently, with a partial batch
response so that only the jobs that failed for our own reasons come back.

It watches the invocation's remaining time so that Lambda never stops it mid-batch:

- a job starts only if the time left covers its worst case (its lane's request timeout
  plus its storage, `Deliverer.budget`) and a margin to answer; otherwise it is handed back
  unstarted: sent again to its lane at once and reported done, so it neither waits out the
  visibility timeout nor counts toward the dead-letter queue (it did not fail);
- the batch answers `RETURN_MARGIN_SECONDS` before the invocation's end whatever its jobs
  do; a job still running then is reported as failed, so SQS delivers it again. It cannot be
  mid-request (a request ends within its budget); an event attempt it claimed holds only
  until this invocation's end, after which the job's next copy takes it over.

The partial batch response is written here rather than with Powertools' batch utility:
that utility (and the asyncio and event classes it loads) cost about 90 ms of the deliver
function's cold start, a sixth of it, for a response of one list (docs/benchmarks.md).
As with Powertools, a batch whose every job failed raises `BatchFailedError`, so the
invocation fails and Lambda's own retry and error metrics see it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from webhook_service import telemetry, wiring
from webhook_service.jobs.deliverer import Deliverer, Outcome
from webhook_service.jobs.dispatch import handle_job, parse_job
from webhook_service.lanes import Lane, job_lane, lane_of_source
from webhook_service.logs import logger
from webhook_service.settings import get_settings

MAX_BATCH = 10  # the event source's batch size: every job of a batch gets its own thread
RETURN_MARGIN_SECONDS = 1.0  # the batch answers this long before the invocation's end
_executor = ThreadPoolExecutor(max_workers=MAX_BATCH, thread_name_prefix="deliver")

TimeLeft = Callable[[], float]
Record = Mapping[str, Any]  # one SQS record as Lambda hands it over


class BatchFailedError(Exception):
    """Every job of the batch failed: the invocation fails, so the whole batch comes back."""


def _time_left(context: Any) -> TimeLeft | None:
    """Seconds left in the invocation, from Lambda's context (None without one)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return lambda: float(remaining()) / 1000


def _source_lanes() -> dict[Lane, str]:
    """Each lane's queue as the environment names it, to tell which lane a record came from.
    A lane not named there is just not recognised (its jobs go by their kind); a missing
    QUEUE_URL fails where the deliverer is made, not here (tests inject their own)."""
    settings = get_settings()
    events = settings.queue or ""
    return {Lane.EVENTS: events, Lane.TESTS: settings.test_queue or events, Lane.SLOW: settings.slow_queue or events}


def _run(record: Record, request_id: str, source_lane: Lane | None, time_left: TimeLeft | None) -> Outcome:
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(
        correlation_id=request_id,
        message_id=record.get("messageId"),
        receive_count=(record.get("attributes") or {}).get("ApproximateReceiveCount"),
    )
    try:
        deliverer = wiring.deliverer()
        body = record["body"]
        job = parse_job(body)
        lane = source_lane or job_lane(job)
        if time_left is not None and time_left() < deliverer.budget(lane) + RETURN_MARGIN_SECONDS:
            return _hand_back(deliverer, job, lane, time_left())
        return handle_job(deliverer, body, lane, time_left)
    except Exception:
        logger.exception("job failed; it will be retried")
        telemetry.failure()  # the function's rollback alarm counts these
        raise


def _hand_back(deliverer: Deliverer, job: dict[str, Any], lane: Lane, left: float) -> Outcome:
    deliverer.lanes.queue(lane).send(job)
    logger.info("job handed back unstarted", extra={"lane": str(lane), "time_left_s": round(left, 3)})
    return Outcome("test" if job["job"] == "test" else "event", "handed-back")


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run a batch's jobs at once, each on a thread of its own, and answer with the ones that
    failed (or were still running when the invocation's end came near). Afterwards, write
    the metrics from this thread (Powertools' metric set is not for concurrent use)."""
    request_id = getattr(context, "aws_request_id", "-")
    time_left = _time_left(context)
    lanes = _source_lanes()
    records: list[Record] = list(event.get("Records") or [])
    running: list[tuple[Record, Future[Outcome]]] = [
        (
            record,
            _executor.submit(
                _run, record, request_id, lane_of_source(record.get("eventSourceARN") or "", lanes), time_left
            ),
        )
        for record in records
    ]
    if running:
        timeout = None if time_left is None else max(0.0, time_left() - RETURN_MARGIN_SECONDS)
        wait([future for _, future in running], timeout=timeout)
    ended: list[Outcome] = []
    failed: list[str] = []
    for record, future in running:
        if not future.done():
            logger.warning(
                "job still running at the invocation's end; it will be retried",
                extra={"message_id": record.get("messageId")},
            )
            failed.append(str(record.get("messageId")))
        elif future.exception() is not None:
            failed.append(str(record.get("messageId")))
        else:
            ended.append(future.result())
    _write_metrics(ended)
    if records and len(failed) == len(records):
        raise BatchFailedError(f"all {len(records)} jobs of the batch failed; it will be delivered again")
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _write_metrics(ended: list[Outcome]) -> None:
    telemetry.outcomes(Counter((o.kind, o.name) for o in ended))
    telemetry.durations(telemetry.DELIVERY_DURATION, [o.duration_ms for o in ended if o.duration_ms is not None])
    failed = sum(1 for o in ended if o.failed_for_good)
    if failed:
        telemetry.count(telemetry.EVENTS_FAILED, failed)
    telemetry.flush()
