"""Webhook configs: create (with its first test), read, list, update, deactivate, test and
rotate the secret (docs/design.md §5, §6, §14)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from typing import Any

from webhook_service import telemetry
from webhook_service.domain.configs import (
    CONFIG_STATES,
    FAST_LANE_OPEN_TESTS,
    MAX_OPEN_TESTS,
    ROTATION_OVERLAP_DEFAULT,
    ROTATION_OVERLAP_MAX,
    UPDATABLE_STATES,
    ConfigState,
    Task,
    WebhookConfig,
    can_test,
    failed_to_queue,
    new_config,
    new_test_task,
    plan_update,
    rotated,
)
from webhook_service.domain.ids import is_uuid
from webhook_service.domain.limits import AT_ONCE
from webhook_service.domain.tenants import Principal
from webhook_service.errors import (
    ConfigQuotaError,
    ConflictError,
    DependencyError,
    InvalidParameterError,
    InvalidStateError,
    LimitExceededError,
    NotFoundError,
    OpenTestsLimitError,
    UnavailableError,
)
from webhook_service.lanes import Lane, config_test_job
from webhook_service.logs import logger
from webhook_service.service import limits
from webhook_service.service.context import UPDATE_ATTEMPTS, Services, cursors_of
from webhook_service.validation import check_fields, parse_list_query, validate_rate_limit, validate_url
from webhook_service.views import config_resource, list_resource, task_resource


def create_config(svc: Services, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
    check_fields(body, allowed=("url", "rate_limit"), required=("url",))
    url = validate_url(body["url"], allow_http=svc.allow_private_targets)
    rate_limit = validate_rate_limit(body.get("rate_limit"))
    limits.take_test(svc, caller)
    now = svc.clock()
    config = new_config(caller.organisation, url, now, rate_limit)
    task = new_test_task(config, caller.key_id, now)
    config = replace(config, open_test=task.id)
    lane = store_counted(svc, partial(svc.store.configs.create, config, task))
    telemetry.count(telemetry.CONFIGS_CREATED)
    logger.info("config created", extra={"config_id": config.id, "task_id": task.id})
    _queue_test(svc, config, task, lane)
    return config_resource(config, now=now)


def get_config(svc: Services, caller: Principal, config_id: str) -> dict[str, Any]:
    return config_resource(load_config(svc, caller, config_id), now=svc.clock())


def list_configs(svc: Services, caller: Principal, params: dict[str, str]) -> dict[str, Any]:
    query = parse_list_query(params, {"state": CONFIG_STATES})
    with cursors_of("webhook_config"):
        page = svc.store.lists.configs(caller.organisation, query)
    now = svc.clock()
    return list_resource(page, "/configs/webhook", [config_resource(c, now=now) for c in page.items])


def update_config(svc: Services, caller: Principal, config_id: str, body: dict[str, Any]) -> dict[str, Any]:
    check_fields(body, allowed=("url", "state", "rate_limit"))
    url = validate_url(body["url"], allow_http=svc.allow_private_targets) if "url" in body else None
    rate_limit = (validate_rate_limit(body["rate_limit"]),) if "rate_limit" in body else None
    state = body.get("state")
    if "state" in body and state not in UPDATABLE_STATES:
        raise InvalidParameterError(
            "state can only be set to new or deactivated.", params={"state": "must be one of new, deactivated"}
        )
    return _change_config(svc, caller, config_id, url, state, rate_limit)


def delete_config(svc: Services, caller: Principal, config_id: str) -> dict[str, Any]:
    """Deactivate a config; it is kept for history and can be brought back with `state: new`."""
    return _change_config(svc, caller, config_id, None, ConfigState.DEACTIVATED)


def queue_config_test(svc: Services, caller: Principal, config_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Queue a test of the config, or answer the one of its version still pending or
    processing (at most one test of a version is open at a time)."""
    check_fields(body, allowed=())
    charged = False  # one test's worth of the organisation's rate, taken once whatever the races
    for _ in range(UPDATE_ATTEMPTS):
        config = load_config(svc, caller, config_id)
        if not can_test(config):
            raise InvalidStateError(
                "A deactivated config cannot be tested; set its state to new to reactivate it.",
                params={"state": str(config.state)},
            )
        open_task = _open_test(svc, config)
        if open_task is not None:
            return task_resource(open_task)
        task = new_test_task(config, caller.key_id, svc.clock())
        charged = charged or _take_test(svc, caller)
        try:
            lane = store_counted(svc, partial(svc.store.configs.create_test_task, config, task))
        except ConflictError:
            continue  # changed since it was read (another test queued, or an update): read it again
        _queue_test(svc, config, task, lane)
        return task_resource(task)
    raise UnavailableError("The config is being changed by other requests; try again.")


def _open_test(svc: Services, config: WebhookConfig) -> Task | None:
    """The test of the config's version still pending or processing, if any."""
    if config.open_test is None:
        return None
    task = svc.store.configs.get_task(config.organisation, config.open_test)
    if task is not None and not task.ended and task.target_version == config.version:
        return task
    return None


def rotate_secret(
    svc: Services, caller: Principal, config_id: str, body: dict[str, Any], arrived: dt.datetime | None = None
) -> dict[str, Any]:
    """Give a config a new secret; the current one keeps signing alongside it for
    `overlap_seconds` (design.md §14). The state and version stay as they are. A rotation
    made at once with another (`arrived` before the other's write, or within a second
    after it) is refused rather than made on top of it, so the secret every 200 gives
    signs for the overlap it promised."""
    check_fields(body, allowed=("overlap_seconds",))
    overlap = body.get("overlap_seconds", ROTATION_OVERLAP_DEFAULT)
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= ROTATION_OVERLAP_MAX:
        raise InvalidParameterError(
            f"overlap_seconds must be a whole number from 0 to {ROTATION_OVERLAP_MAX}.",
            params={"overlap_seconds": f"must be an integer from 0 to {ROTATION_OVERLAP_MAX}"},
        )
    arrived = arrived or svc.clock()
    config = _rotatable(load_config(svc, caller, config_id))
    now = svc.clock()
    new = rotated(config, overlap, now)
    if not svc.store.configs.rotate_secret(config, new, arrived - AT_ONCE):
        _rotatable(load_config(svc, caller, config_id))  # deactivated meanwhile: say so
        raise InvalidStateError(
            "The config's secret was rotated by another request made at the same time; read the config for"
            " the secret it has now.",
            params={"secret": "rotated by another request at once"},
        )
    telemetry.count(telemetry.SECRET_ROTATIONS)
    logger.info("secret rotated", extra={"config_id": config.id, "overlap_seconds": overlap})
    return config_resource(new, now=now)


def _rotatable(config: WebhookConfig) -> WebhookConfig:
    if config.state == ConfigState.DEACTIVATED:
        raise InvalidStateError(
            "A deactivated config's secret cannot be rotated; set its state to new first.",
            params={"state": str(config.state)},
        )
    return config


def _take_test(svc: Services, caller: Principal) -> bool:
    limits.take_test(svc, caller)
    return True


def store_counted(svc: Services, write: Callable[..., None]) -> Lane:
    """Make a write that creates a task counted in its organisation's open tests (a test, or
    a recover: both run on the tests lane), and
    choose the task's lane: the tests lane while the organisation has fewer than
    FAST_LANE_OPEN_TESTS open, the slow lane beyond (so that one organisation's tests
    never hold more than a few of the tests lane's slots), 429 past the cap. Both limits
    are conditions of the write itself: strict under concurrent requests, and so is the
    organisation's quota of configs when the write creates or reactivates one."""
    cap = svc.store.configs.open_tests_cap
    try:
        with _configs_quota():
            write(open_tests_below=min(FAST_LANE_OPEN_TESTS, cap))
    except OpenTestsLimitError:
        pass
    else:
        return Lane.TESTS
    try:
        with _configs_quota():
            write(open_tests_below=cap)
    except OpenTestsLimitError:
        raise _too_many_open_tests() from None
    return Lane.SLOW


@contextlib.contextmanager
def _configs_quota() -> Iterator[None]:
    """A write refused by the organisation's quota of configs is 429 naming `configs`."""
    try:
        yield
    except ConfigQuotaError as exc:
        raise LimitExceededError(
            f"The organisation has {exc.cap} configs that are not deactivated, as many as it may;"
            " deactivate one first.",
            params={"configs": f"at most {exc.cap} not deactivated per organisation"},
        ) from None


def _too_many_open_tests() -> LimitExceededError:
    return LimitExceededError(
        f"The organisation has {MAX_OPEN_TESTS} tests pending or processing; try again when some have ended.",
        params={"open_tests": f"at most {MAX_OPEN_TESTS} per organisation"},
    )


def _change_config(
    svc: Services,
    caller: Principal,
    config_id: str,
    url: str | None,
    state: str | None,
    rate_limit: tuple[int | None] | None = None,
) -> dict[str, Any]:
    charged = False  # one test's worth of the organisation's rate, taken once whatever the races
    for _ in range(UPDATE_ATTEMPTS):
        config = load_config(svc, caller, config_id)
        plan = plan_update(config, url, state, rate_limit)
        if not plan.changed:
            return config_resource(config, now=svc.clock())
        task = new_test_task(plan.config, caller.key_id, svc.clock()) if plan.queue_test else None
        updated = replace(plan.config, open_test=task.id if task else None)
        lane = Lane.TESTS
        try:
            if task is None:
                svc.store.configs.replace(updated, expected_version=config.version, task=None)
            else:
                charged = charged or _take_test(svc, caller)
                lane = store_counted(svc, partial(svc.store.configs.replace, updated, config.version, task))
        except ConflictError:
            continue
        logger.info(
            "config updated",
            extra={"config_id": config_id, "state": plan.config.state, "version": plan.config.version},
        )
        if task is not None:
            _queue_test(svc, updated, task, lane)
        return config_resource(updated, now=svc.clock())
    raise UnavailableError("The config is being changed by other requests; try again.")


def _queue_test(svc: Services, config: WebhookConfig, task: Task, lane: Lane) -> None:
    """Queue a stored test task in `lane`, or the slow lane for an endpoint marked slow. If
    SQS refuses, the task ends `failed`/`queue-unavailable` and the caller gets 503; the
    config keeps its state and can be tested again."""
    if config.slow_until is not None and config.is_slow(svc.clock()):
        lane = Lane.SLOW
    queue_task(
        svc,
        task,
        lane,
        config_test_job(task.id, task.organisation, config.id),
        "The test could not be queued; the config was saved and can be tested again.",
    )
    telemetry.count(telemetry.TESTS_QUEUED)
    logger.info("test queued", extra={"task_id": task.id, "config_id": config.id})


def queue_task(svc: Services, task: Task, lane: Lane, job: dict[str, Any], refusal: str) -> None:
    """Send the job of a stored task (a test, a recover) to `lane`. If SQS refuses, the task
    ends `failed`/`queue-unavailable` and the caller gets 503 saying `refusal`."""
    try:
        svc.lanes.queue(lane).send(job)
    except DependencyError as exc:
        telemetry.count(telemetry.QUEUE_SEND_FAILURES)
        logger.warning(
            "task not queued",
            extra={"task_id": task.id, "type": task.type, "config_id": task.target, "reason": str(exc)},
        )
        try:
            svc.store.configs.finish_pending_task(failed_to_queue(task, svc.clock()))
        except (DependencyError, ConflictError):
            logger.exception("task left pending", extra={"task_id": task.id})
        raise UnavailableError(refusal, params={"webhook_config": task.target, "task": task.id}) from exc


def load_config(svc: Services, caller: Principal, config_id: str) -> WebhookConfig:
    """The caller's organisation's config, or NotFoundError (a malformed id names nothing)."""
    config = svc.store.configs.get(caller.organisation, config_id) if is_uuid(config_id) else None
    if config is None:
        raise NotFoundError("webhook_config")
    return config
