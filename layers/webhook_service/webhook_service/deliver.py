"""The deliver function's use cases: run a config's test task (and, later, deliver events).

A receiver's failure is an outcome to record, never an exception. Only our own failures
(storage) raise, so that SQS delivers the job again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from webhook_service.delivery import DeliveryResult, Sender, default_ssl_context, delivery_url
from webhook_service.domain import (
    Event,
    config_state_after_test,
    config_test_event,
    is_stale,
    new_id,
    superseded,
)
from webhook_service.logs import logger
from webhook_service.settings import get_settings
from webhook_service.signing import signature_headers
from webhook_service.storage import Store
from webhook_service.timefmt import utcnow


class BadJobError(Exception):
    """A queue message this function cannot read: a bug upstream, left for the DLQ."""


@dataclass
class Deliverer:
    store: Store
    sender: Sender
    clock: Callable[[], dt.datetime] = field(default=utcnow)


_deliverer: Deliverer | None = None


def get_deliverer() -> Deliverer:
    """The process-wide deliverer, made on first use; its session outlives invocations."""
    global _deliverer
    if _deliverer is None:
        settings = get_settings()
        _deliverer = Deliverer(
            store=Store(settings.table_name),
            sender=Sender(
                allow_private=settings.allow_private_targets,
                connect_timeout=settings.delivery_connect_timeout,
                total_timeout=settings.delivery_timeout,
                ssl_context=default_ssl_context(settings.delivery_ca_bundle),
            ),
        )
    return _deliverer


def set_deliverer(deliverer: Deliverer | None) -> None:
    global _deliverer
    _deliverer = deliverer


def event_body(event: Event) -> bytes:
    """The event resource as compact JSON: serialized once; these bytes are signed and sent."""
    return json.dumps(event.to_resource(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_job(body: str) -> dict[str, Any]:
    try:
        job = json.loads(body)
    except ValueError:
        raise BadJobError("the message is not JSON") from None
    if not isinstance(job, dict) or job.get("job") != "test" or not job.get("task") or not job.get("organisation"):
        raise BadJobError("the message is not a known job")
    return job


def handle_job(deliverer: Deliverer, body: str) -> str:
    job = parse_job(body)
    return run_test(deliverer, job["organisation"], job["task"])


def run_test(deliverer: Deliverer, organisation: str, task_id: str) -> str:
    """Run one test task to its end. Returns the outcome, for logs and metrics:
    `succeeded`, `failed`, `superseded`, `stale` (sent, but the config had changed),
    `duplicate` (already ended) or `missing`."""
    store = deliverer.store
    task = store.get_task(organisation, task_id)
    if task is None:
        logger.warning("test task not found", extra={"task_id": task_id})
        return "missing"
    if task.ended:
        logger.info("test task already ended", extra={"task_id": task_id, "state": task.state})
        return "duplicate"
    config = store.get_config(organisation, task.target)
    if is_stale(task, config):
        ended = store.end_task(superseded(task, deliverer.clock()))
        logger.info("test superseded", extra={"task_id": task_id, "config_id": task.target})
        return "superseded" if ended else "duplicate"
    assert config is not None
    started = store.start_task(task, new_id(), deliverer.clock())
    if started is None or started.event_id is None:
        return "duplicate"
    task = started
    event = store.get_event(organisation, started.event_id) or store.create_event(
        config_test_event(task, config, started.event_id, deliverer.clock())
    )
    body = event_body(event)
    result = deliverer.sender.post(
        delivery_url(config.url, event.id), body, signature_headers(config.secret, event.id, body)
    )
    outcome = _record(deliverer, config, task, event, result)
    log = logger.info if result.ok else logger.warning
    log(
        "test delivered" if result.ok else "test failed",
        extra={
            "task_id": task.id,
            "config_id": config.id,
            "event_id": event.id,
            "status_code": result.status_code,
            "duration_ms": result.duration_ms,
            "error": result.error,
            "write_back": outcome,
        },
    )
    if outcome == "applied":
        return "succeeded" if result.ok else "failed"
    return outcome


def _record(deliverer: Deliverer, config: Any, task: Any, event: Event, result: DeliveryResult) -> str:
    now = deliverer.clock()
    finished_task = replace(
        task,
        state="succeeded" if result.ok else "failed",
        error=result.error,
        result=result.as_task_result(),
        date_completed=now,
    )
    finished_event = replace(
        event,
        state="delivered" if result.ok else "failed",
        error=result.error,
        date_delivered=now if result.ok else None,
    )
    return deliverer.store.record_test_outcome(
        config, config_state_after_test(result.ok), finished_task, finished_event
    )
