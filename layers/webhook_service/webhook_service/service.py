"""The API's use cases: each takes the caller and validated input, and returns a resource.

This module ties the domain rules to storage and the queue; it knows nothing of HTTP.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from webhook_service import telemetry
from webhook_service.auth import Authenticator
from webhook_service.domain import (
    CONFIG_STATES,
    EVENT_STATES,
    FAST_LANE_OPEN_TESTS,
    MAX_OPEN_TESTS,
    ROTATION_OVERLAP_DEFAULT,
    ROTATION_OVERLAP_MAX,
    TASK_STATES,
    TASK_TYPES,
    UPDATABLE_STATES,
    ConfigState,
    EventState,
    KeyState,
    ListQuery,
    Organisation,
    Principal,
    Task,
    WebhookConfig,
    can_resend,
    can_test,
    failed_to_queue,
    is_uuid,
    new_config,
    new_test_task,
    plan_update,
    resent,
    rotated,
    route,
)
from webhook_service.errors import (
    ConflictError,
    DependencyError,
    InvalidParameterError,
    InvalidStateError,
    LimitExceededError,
    NotFoundError,
    OpenTestsLimitError,
    UnavailableError,
)
from webhook_service.jobqueue import JobQueue, JobSender, Lane, Lanes, config_test_job, event_job
from webhook_service.logs import logger
from webhook_service.ports import Repository
from webhook_service.settings import get_settings
from webhook_service.storage import (
    Page,
    Store,
    UnknownCursorError,
)
from webhook_service.timefmt import utcnow
from webhook_service.validation import ANY_ID, ANY_NAME, check_fields, parse_list_query, validate_url

UPDATE_ATTEMPTS = 3


@dataclass
class Services:
    """What the use cases need; tests build one with their own clients and clock. `store` is
    any Repository (ports.py): the use cases read and write through no more than it offers.
    `queue` is the events lane; tests go to `test_queue`, or `slow_queue` for an endpoint
    marked slow (each the events lane's queue when None)."""

    store: Repository
    queue: JobSender
    authenticator: Authenticator
    allow_private_targets: bool = False
    clock: Callable[[], dt.datetime] = field(default=utcnow)
    test_queue: JobSender | None = None
    slow_queue: JobSender | None = None

    @property
    def lanes(self) -> Lanes:
        return Lanes(events=self.queue, tests=self.test_queue, slow=self.slow_queue)


@dataclass
class ProcessServices(Services):
    """Services on the table's own Store, as the process makes them (get_services): publishing
    an event (events.publish), the sweep and the local stack use more of the Store than the
    use cases do."""

    store: Store


_services: ProcessServices | None = None


def get_services() -> ProcessServices:
    """The process-wide services, made on first use from the settings."""
    global _services
    if _services is None:
        settings = get_settings()
        store = Store(settings.table_name, routing_cache_seconds=settings.routing_cache_seconds)
        _services = ProcessServices(
            store=store,
            queue=JobQueue(settings.queue_url),
            authenticator=Authenticator(store, ttl=settings.key_cache_seconds),
            allow_private_targets=settings.allow_private_targets,
            test_queue=JobQueue(settings.test_queue_url) if settings.test_queue_url != settings.queue_url else None,
            slow_queue=JobQueue(settings.slow_queue_url) if settings.slow_queue_url != settings.queue_url else None,
        )
    return _services


def set_services(services: ProcessServices | None) -> None:
    """Replace the process-wide services (tests and the local stack)."""
    global _services
    _services = services


# -- webhook configs ---------------------------------------------------------------------


def create_config(svc: Services, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
    check_fields(body, allowed=("url",), required=("url",))
    url = validate_url(body["url"], allow_http=svc.allow_private_targets)
    now = svc.clock()
    config = new_config(caller.organisation, url, now)
    task = new_test_task(config, caller.key_id, now)
    config = replace(config, open_test=task.id)
    lane = _store_counted(svc, partial(svc.store.create_config, config, task))
    telemetry.count(telemetry.CONFIGS_CREATED)
    logger.info("config created", extra={"config_id": config.id, "task_id": task.id})
    _queue_test(svc, config, task, lane)
    return config.to_resource(now=now)


def get_config(svc: Services, caller: Principal, config_id: str) -> dict[str, Any]:
    return _load_config(svc, caller, config_id).to_resource(now=svc.clock())


def list_configs(svc: Services, caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    query = parse_list_query(params, {"state": CONFIG_STATES})
    with _cursors_of("webhook_config"):
        page = svc.store.list_configs(caller.organisation, query)
    return _list_resource(page, "/configs/webhook", [c.to_resource(now=svc.clock()) for c in page.items])


def update_config(svc: Services, caller: Principal, config_id: str, body: dict[str, Any]) -> dict[str, Any]:
    check_fields(body, allowed=("url", "state"))
    url = validate_url(body["url"], allow_http=svc.allow_private_targets) if "url" in body else None
    state = body.get("state")
    if "state" in body and state not in UPDATABLE_STATES:
        raise InvalidParameterError(
            "state can only be set to new or deactivated.", params={"state": "must be one of new, deactivated"}
        )
    return _change_config(svc, caller, config_id, url, state)


def delete_config(svc: Services, caller: Principal, config_id: str) -> dict[str, Any]:
    """Deactivate a config; it is kept for history and can be brought back with `state: new`."""
    return _change_config(svc, caller, config_id, None, ConfigState.DEACTIVATED)


def queue_config_test(svc: Services, caller: Principal, config_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Queue a test of the config, or answer the one of its version still pending or
    processing (at most one test of a version is open at a time)."""
    check_fields(body, allowed=())
    for _ in range(UPDATE_ATTEMPTS):
        config = _load_config(svc, caller, config_id)
        if not can_test(config):
            raise InvalidStateError(
                "A deactivated config cannot be tested; set its state to new to reactivate it.",
                params={"state": str(config.state)},
            )
        if config.open_test is not None:
            open_task = svc.store.get_task(caller.organisation, config.open_test)
            if open_task is not None and not open_task.ended and open_task.target_version == config.version:
                return open_task.to_resource()
        task = new_test_task(config, caller.key_id, svc.clock())
        try:
            lane = _store_counted(svc, partial(svc.store.create_test_task, config, task))
        except ConflictError:
            continue  # changed since it was read (another test queued, or an update): read it again
        _queue_test(svc, config, task, lane)
        return task.to_resource()
    raise UnavailableError("The config is being changed by other requests; try again.")


def rotate_secret(svc: Services, caller: Principal, config_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Give a config a new secret; the current one keeps signing alongside it for
    `overlap_seconds` (design.md §14). The state and version stay as they are."""
    check_fields(body, allowed=("overlap_seconds",))
    overlap = body.get("overlap_seconds", ROTATION_OVERLAP_DEFAULT)
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= ROTATION_OVERLAP_MAX:
        raise InvalidParameterError(
            f"overlap_seconds must be a whole number from 0 to {ROTATION_OVERLAP_MAX}.",
            params={"overlap_seconds": f"must be an integer from 0 to {ROTATION_OVERLAP_MAX}"},
        )
    for _ in range(UPDATE_ATTEMPTS):
        config = _load_config(svc, caller, config_id)
        if config.state == ConfigState.DEACTIVATED:
            raise InvalidStateError(
                "A deactivated config's secret cannot be rotated; set its state to new first.",
                params={"state": str(config.state)},
            )
        now = svc.clock()
        new = rotated(config, overlap, now)
        if svc.store.rotate_secret(config, new):
            telemetry.count(telemetry.SECRET_ROTATIONS)
            logger.info("secret rotated", extra={"config_id": config.id, "overlap_seconds": overlap})
            return new.to_resource(now=now)
    raise UnavailableError("The config is being changed by other requests; try again.")


def _store_counted(svc: Services, write: Callable[..., None]) -> Lane:
    """Make a write that creates a test task counted in its organisation's open tests, and
    choose the task's lane: the tests lane while the organisation has fewer than
    FAST_LANE_OPEN_TESTS open, the slow lane beyond (so that one organisation's tests
    never hold more than a few of the tests lane's slots), 429 past the cap. Both limits
    are conditions of the write itself: strict under concurrent requests."""
    cap = svc.store.open_tests_cap
    try:
        write(open_tests_below=min(FAST_LANE_OPEN_TESTS, cap))
    except OpenTestsLimitError:
        pass
    else:
        return Lane.TESTS
    try:
        write(open_tests_below=cap)
    except OpenTestsLimitError:
        raise _too_many_open_tests() from None
    return Lane.SLOW


def _too_many_open_tests() -> LimitExceededError:
    return LimitExceededError(
        f"The organisation has {MAX_OPEN_TESTS} tests pending or processing; try again when some have ended.",
        params={"open_tests": f"at most {MAX_OPEN_TESTS} per organisation"},
    )


def _change_config(
    svc: Services, caller: Principal, config_id: str, url: str | None, state: str | None
) -> dict[str, Any]:
    for _ in range(UPDATE_ATTEMPTS):
        config = _load_config(svc, caller, config_id)
        plan = plan_update(config, url, state)
        if not plan.changed:
            return config.to_resource(now=svc.clock())
        task = new_test_task(plan.config, caller.key_id, svc.clock()) if plan.queue_test else None
        updated = replace(plan.config, open_test=task.id if task else None)
        lane = Lane.TESTS
        try:
            if task is None:
                svc.store.replace_config(updated, expected_version=config.version, task=None)
            else:
                lane = _store_counted(svc, partial(svc.store.replace_config, updated, config.version, task))
        except ConflictError:
            continue
        logger.info(
            "config updated",
            extra={"config_id": config_id, "state": plan.config.state, "version": plan.config.version},
        )
        if task is not None:
            _queue_test(svc, updated, task, lane)
        return updated.to_resource(now=svc.clock())
    raise UnavailableError("The config is being changed by other requests; try again.")


def _queue_test(svc: Services, config: WebhookConfig, task: Task, lane: Lane) -> None:
    """Queue a stored test task in `lane`, or the slow lane for an endpoint marked slow. If
    SQS refuses, the task ends `failed`/`queue-unavailable` and the caller gets 503; the
    config keeps its state and can be tested again."""
    if config.slow_until is not None and config.is_slow(svc.clock()):
        lane = Lane.SLOW
    try:
        svc.lanes.queue(lane).send(config_test_job(task.id, task.organisation, config.id))
    except DependencyError as exc:
        telemetry.count(telemetry.QUEUE_SEND_FAILURES)
        logger.warning("test not queued", extra={"task_id": task.id, "config_id": config.id, "reason": str(exc)})
        try:
            svc.store.finish_pending_task(failed_to_queue(task, svc.clock()))
        except (DependencyError, ConflictError):
            logger.exception("task left pending", extra={"task_id": task.id})
        raise UnavailableError(
            "The test could not be queued; the config was saved and can be tested again.",
            params={"webhook_config": config.id, "task": task.id},
        ) from exc
    telemetry.count(telemetry.TESTS_QUEUED)
    logger.info("test queued", extra={"task_id": task.id, "config_id": config.id})


def _load_config(svc: Services, caller: Principal, config_id: str) -> WebhookConfig:
    config = svc.store.get_config(caller.organisation, config_id) if is_uuid(config_id) else None
    if config is None:
        raise NotFoundError("webhook_config")
    return config


# -- tasks ---------------------------------------------------------------------------------


def get_task(svc: Services, caller: Principal, task_id: str) -> dict[str, Any]:
    task = svc.store.get_task(caller.organisation, task_id) if is_uuid(task_id) else None
    if task is None:
        raise NotFoundError("task")
    return task.to_resource()


def list_tasks(svc: Services, caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    query = parse_list_query(params, {"type": TASK_TYPES, "target": ANY_ID, "state": TASK_STATES})
    with _cursors_of("task"):
        page = svc.store.list_tasks(caller.organisation, query)
    return _list_resource(page, "/tasks", [t.to_resource() for t in page.items])


# -- keys and the organisation -----------------------------------------------------------

EMBEDDED_CONFIGS = 10


def get_key(svc: Services, caller: Principal) -> dict[str, Any]:
    key = svc.store.get_key(caller.organisation, caller.key_id)
    if key is None:
        raise NotFoundError("key")
    return key.to_resource()


def update_key(svc: Services, caller: Principal, key_id: str, body: dict[str, Any]) -> dict[str, Any]:
    check_fields(body, allowed=("webhook_config",), required=("webhook_config",))
    key = svc.store.get_key(caller.organisation, key_id) if is_uuid(key_id) else None
    if key is None:
        raise NotFoundError("key")
    if key.state != KeyState.ACTIVE:
        raise InvalidStateError("A deactivated key cannot be changed.", params={"state": str(key.state)})
    config_id = _usable_config(svc, caller, body["webhook_config"], "webhook_config")
    try:
        updated = svc.store.set_key_config(caller.organisation, key_id, config_id)
    except ConflictError:
        raise _reference_changed("webhook_config") from None
    logger.info("key config set", extra={"target_key_id": key_id, "config_id": config_id})
    return (updated or key).to_resource()


def get_organisation(svc: Services, caller: Principal) -> dict[str, Any]:
    organisation = svc.store.get_organisation(caller.organisation)
    if organisation is None:
        raise NotFoundError("organisation")
    return _organisation_resource(svc, organisation)


def update_organisation(svc: Services, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
    check_fields(body, allowed=("webhook_config_default",), required=("webhook_config_default",))
    config_id = _usable_config(svc, caller, body["webhook_config_default"], "webhook_config_default")
    try:
        organisation = svc.store.set_organisation_default(caller.organisation, config_id)
    except ConflictError:
        raise _reference_changed("webhook_config_default") from None
    if organisation is None:
        raise NotFoundError("organisation")
    logger.info("organisation default set", extra={"config_id": config_id})
    return _organisation_resource(svc, organisation)


def _usable_config(svc: Services, caller: Principal, value: Any, field_name: str) -> str | None:
    """A config id a key or the organisation may point at: in the caller's organisation and
    not deactivated. None clears the reference."""
    if value is None:
        return None
    if not isinstance(value, str) or not is_uuid(value):
        raise InvalidParameterError(
            f"{field_name} must be a config id or null.", params={field_name: "must be an id or null"}
        )
    config = svc.store.get_config(caller.organisation, value)
    if config is None:
        raise InvalidParameterError(
            f"{field_name} names no webhook_config.", params={field_name: "no such webhook_config"}
        )
    if config.state == ConfigState.DEACTIVATED:
        raise InvalidStateError(
            "A deactivated config cannot receive events; set its state to new first.",
            params={field_name: ConfigState.DEACTIVATED.value},
        )
    return value


def _reference_changed(field_name: str) -> InvalidStateError:
    return InvalidStateError(
        "The config was deactivated meanwhile.", params={field_name: ConfigState.DEACTIVATED.value}
    )


def _organisation_resource(svc: Services, organisation: Organisation) -> dict[str, Any]:
    configs = svc.store.list_configs(organisation.id, ListQuery(limit=EMBEDDED_CONFIGS))
    has_valid = svc.store.list_configs(organisation.id, ListQuery(filters={"state": ConfigState.VALID}, limit=1))
    resource = organisation.to_resource()
    resource["webhook_configs"] = _list_resource(
        configs, "/configs/webhook", [c.to_resource(now=svc.clock()) for c in configs.items]
    )
    resource["state"] = "active" if has_valid.items else "unconfigured"
    return resource


# -- events ----------------------------------------------------------------------------------


def get_event(svc: Services, caller: Principal, event_id: str) -> dict[str, Any]:
    event = svc.store.get_event(caller.organisation, event_id) if is_uuid(event_id) else None
    if event is None:
        raise NotFoundError("event")
    return event.to_resource()


def list_events(svc: Services, caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    query = parse_list_query(params, {"type": ANY_NAME, "action": ANY_NAME, "state": EVENT_STATES})
    with _cursors_of("event"):
        page = svc.store.list_events(caller.organisation, query)
    return _list_resource(page, "/events", [e.to_resource() for e in page.items])


def list_attempts(svc: Services, caller: Principal, event_id: str, params: dict[str, str]) -> dict[str, Any]:
    """An event's attempts, newest first (design.md §12); 404 for an event that is not the
    caller's organisation's."""
    query = parse_list_query(params, {})
    event = svc.store.get_event(caller.organisation, event_id) if is_uuid(event_id) else None
    if event is None:
        raise NotFoundError("event")
    query = replace(query, filters={"event": event.id})
    with _cursors_of("attempt"):
        page = svc.store.list_attempts(caller.organisation, query)
    url = f"/events/{event.id}/attempts"
    return _list_resource(page, url, [a.to_resource() for a in page.items])


def resend_event(svc: Services, caller: Principal, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Re-open an ended event for a new round of attempts, with the same id (design.md §13).

    The write is conditional on the event being as it was read (ended, same round): of
    resends made at once, one re-opens it and the others find it pending (400), so it is
    delivered once."""
    check_fields(body, allowed=())
    event = svc.store.get_event(caller.organisation, event_id) if is_uuid(event_id) else None
    if event is None:
        raise NotFoundError("event")
    if event.is_test:
        raise InvalidStateError(
            "A config's test event cannot be resent; test the config again instead.",
            params={"type": event.type, "action": event.action},
        )
    if not can_resend(event):
        raise InvalidStateError(
            "Only a delivered or failed event can be resent; this one is still being delivered.",
            params={"state": event.state},
        )
    _, key, organisation = svc.store.get_routing(caller.organisation, event.key)
    target = route(
        key.webhook_config if key else None,
        organisation.webhook_config_default if organisation else None,
    )
    config = svc.store.get_config(caller.organisation, target) if target else None
    if config is None or config.state != ConfigState.VALID:
        raise InvalidStateError(
            "The event has no valid webhook config to go to: set the key's config or the organisation's"
            " default to a valid one first.",
            params={"webhook_config": "no valid config for this event"},
        )
    reopened = resent(event)
    if not svc.store.resend_event(event, reopened):
        raise InvalidStateError(
            "The event was resent by another request meanwhile.", params={"state": EventState.PENDING.value}
        )
    try:
        svc.queue.send(event_job(event.id, event.organisation, 1, key=event.key, round_=reopened.resends))
    except DependencyError as exc:
        telemetry.count(telemetry.QUEUE_SEND_FAILURES)
        logger.warning("resend not queued", extra={"event_id": event.id, "reason": str(exc)})
        try:
            undone = svc.store.reopen_undone(reopened, event)
        except (DependencyError, ConflictError):
            undone = False
        if not undone:  # left pending: the overdue sweep queues it again
            logger.error("resent event left pending", extra={"event_id": event.id})
        raise UnavailableError("The resend could not be queued; try again.", params={"event": event.id}) from exc
    telemetry.count(telemetry.RESENDS)
    logger.info("event resent", extra={"event_id": event.id, "round": reopened.resends})
    return reopened.to_resource()


# -- lists -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _cursors_of(resource: str) -> Iterator[None]:
    """A cursor naming nothing in the list is the caller's error, naming the parameter."""
    try:
        yield
    except UnknownCursorError as exc:
        raise InvalidParameterError(
            f"{exc.name} names no {resource} in this list.", params={exc.name: f"no such {resource}"}
        ) from None


def _list_resource(page: Page[Any], url: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    """The list object. Beyond ricloud's fields: `total_count_capped: true` when
    `total_count` is a lower bound, and `next_after_id` (the next page's `after_id`)
    whenever `has_more` (README, "Lists")."""
    body: dict[str, Any] = {
        "resource": "list",
        "data": data,
        "has_more": page.has_more,
        "total_count": page.total_count,
        "url": url,
    }
    if page.total_count_capped:
        body["total_count_capped"] = True
    if page.next_after_id is not None:
        body["next_after_id"] = page.next_after_id
    return body
