"""A config's test task, run to its end: the signed test event sent, and the task, the
event, its attempt and the config's new state written back together (docs/design.md §6)."""

from __future__ import annotations

from dataclasses import replace

from webhook_service.domain.configs import Task, TaskState, WebhookConfig, config_state_after_test, is_stale, superseded
from webhook_service.domain.delivery import DeliveryResult, delivery_url
from webhook_service.domain.events import Event, EventState, config_test_event
from webhook_service.domain.ids import new_id
from webhook_service.domain.pacing import Slot
from webhook_service.jobs.deliverer import Deliverer, Outcome, attempt_record, event_body
from webhook_service.jobs.pacing import keep_slot, reserve_slot
from webhook_service.lanes import Lane, config_test_job
from webhook_service.logs import logger
from webhook_service.views import config_resource


def _ready(
    deliverer: Deliverer, organisation: str, task_id: str, config_id: str | None
) -> tuple[Task, WebhookConfig] | Outcome:
    """The open task and its config as the job finds them, or the outcome that ends the job
    before anything is sent: `missing`, `duplicate` (already ended) or `superseded`."""
    configs = deliverer.store.configs
    if config_id is not None:  # one read for both (jobs name the config since 0.1.0)
        task, config = configs.get_task_and_config(organisation, task_id, config_id)
    else:
        task, config = configs.get_task(organisation, task_id), None
    if task is None:
        logger.warning("test task not found", extra={"task_id": task_id})
        return Outcome("test", "missing")
    if task.ended:
        logger.info("test task already ended", extra={"task_id": task_id, "state": task.state})
        return Outcome("test", "duplicate")
    if config_id != task.target:  # an older job that did not name the config, or named another
        config = configs.get(organisation, task.target)
    if is_stale(task, config) or config is None:
        ended = configs.end_task(superseded(task, deliverer.clock()))
        logger.info("test superseded", extra={"task_id": task_id, "config_id": task.target})
        return Outcome("test", "superseded" if ended else "duplicate")
    return task, config


def run_test(
    deliverer: Deliverer,
    organisation: str,
    task_id: str,
    config_id: str | None = None,
    lane: Lane = Lane.TESTS,
    slot: Slot | None = None,
) -> Outcome:
    """Run one test task to its end. Returns the outcome, for logs and metrics:
    `succeeded`, `failed`, `superseded`, `stale` (sent, but the config had changed),
    `duplicate` (already ended), `missing`, `slow-lane` (moved to the slow lane), or
    `paced` (sent back to wait for its slot: the config has a `rate_limit`)."""
    ready = _ready(deliverer, organisation, task_id, config_id)
    if isinstance(ready, Outcome):
        return ready
    task, config = ready
    if deliverer.moves_to_slow_lane(lane, config):
        deliverer.lanes.queue(Lane.SLOW).send(config_test_job(task.id, organisation, config.id))
        return Outcome("test", "slow-lane")

    def come_back(held: Slot, delay: int) -> None:
        deliverer.lanes.queue(lane).send(config_test_job(task.id, organisation, config.id, held), delay)

    go, held = reserve_slot(deliverer, config, task.id, slot, come_back)
    if not go:
        return Outcome("test", "paced")
    started = deliverer.store.configs.start_task(task, new_id(), deliverer.clock())
    if started is None or started.event_id is None or started.date_started is None:
        return Outcome("test", "duplicate")
    later = keep_slot(deliverer, config, task.id, held)
    if later is not None:  # the slot was missed and the next is far: a started task starts again
        come_back(*later)
        return Outcome("test", "paced")
    # The event is made from what the first start fixed (its id and date) and the config at
    # the task's version, so a job run again sends the same bytes; it is stored with the
    # outcome, in the same write.
    event = config_test_event(
        organisation,
        config.id,
        config_resource(config, with_secret=False),
        started.key,
        started.event_id,
        started.date_started,
    )
    body = event_body(event)
    url = delivery_url(config.url, event.id)
    result = deliverer.sender_for(lane).post(url, body, deliverer.signed(config, event.id, body))
    if deliverer.was_cut(lane, result):
        return _to_slow_lane(deliverer, started, config, event, url, result)
    deliverer.note_speed(config, result)
    outcome = _record(deliverer, config, started, event, result, url)
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
        return Outcome("test", "succeeded" if result.ok else "failed", result.duration_ms)
    return Outcome("test", outcome, result.duration_ms)


def _to_slow_lane(
    deliverer: Deliverer, task: Task, config: WebhookConfig, event: Event, url: str, result: DeliveryResult
) -> Outcome:
    """The fast lane cut the request: the task stays `processing` and its job, run again in
    the slow lane, sends the same event. The request was sent all the same: it is an
    attempt, not counted."""
    if not deliverer.store.configs.record_cut_test(task, deliverer.cut_attempt(event, config, url, result)):
        return Outcome("test", "duplicate", result.duration_ms)
    deliverer.mark_slow(config)
    deliverer.lanes.queue(Lane.SLOW).send(config_test_job(task.id, task.organisation, config.id))
    logger.info("test moved to the slow lane", extra={"task_id": task.id, "config_id": config.id})
    return Outcome("test", "slow-lane", result.duration_ms)


def _record(
    deliverer: Deliverer, config: WebhookConfig, task: Task, event: Event, result: DeliveryResult, url: str
) -> str:
    now = deliverer.clock()
    finished_task = replace(
        task,
        state=TaskState.SUCCEEDED if result.ok else TaskState.FAILED,
        error=result.error,
        result=result.as_task_result(),
        date_completed=now,
    )
    finished_event = replace(
        event,
        state=EventState.DELIVERED if result.ok else EventState.FAILED,
        error=result.error,
        attempts=1,
        date_delivered=now,
    )
    attempt = attempt_record(event, config, url, result, now)
    return deliverer.store.configs.record_test_outcome(
        config, config_state_after_test(result.ok), finished_task, finished_event, attempt
    )
