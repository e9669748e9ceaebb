"""Webhook configs and their test tasks: states, versions, what an update does, rotation."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from webhook_service.domain.delivery import QUEUE_UNAVAILABLE
from webhook_service.domain.ids import new_id
from webhook_service.signing import SECRET_PREFIX


class ConfigState(StrEnum):
    """A webhook config's state (docs/design.md §6.1). A StrEnum member is its string: it
    compares equal to it and JSON writes it as it. The domain values hold the members (the
    item mappers make them from the stored strings); items, resources and error params
    hold the plain string (`str(state)`), so what is stored and answered is the same text."""

    NEW = "new"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"


class TaskState(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TaskType(StrEnum):
    CONFIG_TEST = "webhook_config.test"
    CONFIG_RECOVER = "webhook_config.recover"  # resends a config's failed events of a window (design.md §19.2)


# The same as plain strings, for validation's lists of accepted values and for messages.
CONFIG_STATES = tuple(state.value for state in ConfigState)
UPDATABLE_STATES = (ConfigState.NEW.value, ConfigState.DEACTIVATED.value)
TASK_STATES = tuple(state.value for state in TaskState)
TASK_ENDED_STATES = (TaskState.SUCCEEDED.value, TaskState.FAILED.value)
TASK_TYPE_TEST = TaskType.CONFIG_TEST.value
TASK_TYPE_RECOVER = TaskType.CONFIG_RECOVER.value
TASK_TYPES = tuple(type_.value for type_ in TaskType)
SUPERSEDED = "superseded"
MAX_OPEN_TESTS = 100  # test tasks pending or processing, per organisation (fair use)
FAST_LANE_OPEN_TESTS = 5  # an organisation's open tests beyond these take the slow lane
SLOW_MARK_SECONDS = 600  # an endpoint that took longer than the fast lanes wait is slow this long
ROTATION_OVERLAP_DEFAULT = 86400  # seconds the previous secret keeps signing after a rotation
ROTATION_OVERLAP_MAX = 604800  # a week
RATE_LIMIT_MAX = 10_000  # deliveries a second a config may ask for (1..this, or none)


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@dataclass(frozen=True)
class WebhookConfig:
    """A receiver URL registered by an organisation, with its signing secret and state."""

    id: str
    organisation: str
    url: str
    secret: str
    state: ConfigState
    version: int
    date_created: dt.datetime
    slow_until: int | None = None  # unix time until which its jobs take the slow lane (internal)
    open_test: str | None = None  # the test task of this version still open, if any (internal)
    # The secret before the last rotation, which keeps signing until `previous_secret_expires`
    # (design.md §14); both None when there is none.
    previous_secret: str | None = None
    previous_secret_expires: dt.datetime | None = None
    rotated_at: dt.datetime | None = None  # when the last rotation was written (internal)
    # Deliveries a second its receiver takes at most (None: no limit); deliveries above it
    # wait their turn (design.md §19.1).
    rate_limit: int | None = None

    def previous_secret_at(self, now: dt.datetime) -> str | None:
        """The previous secret while it still signs at `now`, else None."""
        if self.previous_secret is None or self.previous_secret_expires is None:
            return None
        return self.previous_secret if now < self.previous_secret_expires else None

    def is_slow(self, now: dt.datetime) -> bool:
        """Whether its endpoint recently took longer than the fast lanes wait."""
        return self.slow_until is not None and self.slow_until > now.timestamp()


@dataclass(frozen=True)
class Task:
    """Work the service does for a config on the caller's behalf: its test, or a recover."""

    id: str
    organisation: str
    key: str
    type: str
    target: str
    target_version: int
    state: TaskState
    date_created: dt.datetime
    error: str | None = None
    result: dict[str, Any] | None = None
    date_started: dt.datetime | None = None
    date_completed: dt.datetime | None = None
    event_id: str | None = None  # the test event, fixed when the task first starts (internal)
    counted: bool = False  # counted in its organisation's open tests until it ends (internal)
    # A recover task's place in its window: the index sort key of the last event it dealt
    # with (internal; design.md §19.2).
    cursor: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in TASK_ENDED_STATES


def new_config(organisation: str, url: str, now: dt.datetime, rate_limit: int | None = None) -> WebhookConfig:
    return WebhookConfig(
        id=new_id(),
        organisation=organisation,
        url=url,
        secret=generate_secret(),
        state=ConfigState.NEW,
        version=1,
        date_created=now,
        rate_limit=rate_limit,
    )


def new_test_task(config: WebhookConfig, key: str, now: dt.datetime) -> Task:
    return Task(
        id=new_id(),
        organisation=config.organisation,
        key=key,
        type=TASK_TYPE_TEST,
        target=config.id,
        target_version=config.version,
        state=TaskState.PENDING,
        date_created=now,
        counted=True,
    )


def failed_to_queue(task: Task, now: dt.datetime) -> Task:
    """The task whose job could not be put on the queue (docs/design.md §6.4), or that the
    sweep gave up on (§7.12)."""
    return replace(task, state=TaskState.FAILED, error=QUEUE_UNAVAILABLE, date_completed=now)


@dataclass(frozen=True)
class UpdatePlan:
    """What an accepted update does to a config: its new form and whether to test it."""

    config: WebhookConfig
    changed: bool
    queue_test: bool = field(default=False)


def plan_update(
    config: WebhookConfig, url: str | None, state: str | None, rate_limit: tuple[int | None] | None = None
) -> UpdatePlan:
    """Apply docs/design.md §6.1 to an update request of `url` and/or `state`, and of
    `rate_limit` (a 1-tuple of the new value when the request names it, None when not).

    - `state: deactivated` (with or without a url) deactivates; nothing is tested.
    - `state: new` re-tests from any state, reactivating a deactivated config.
    - a `url` alone re-tests unless the config is deactivated, where it is only stored.
    Every update that names a url or a state moves the version on, so a test queued
    before it can never write its result over it. A new `rate_limit` alone is stored as it
    is: it changes how fast deliveries go, not where, so nothing is tested and the version
    stays.
    """
    if rate_limit is not None and rate_limit[0] != config.rate_limit:
        limited = plan_update(replace(config, rate_limit=rate_limit[0]), url, state)
        return replace(limited, changed=True)
    if url is None and state is None:
        return UpdatePlan(config=config, changed=False)
    new_url = config.url if url is None else url
    if state == ConfigState.DEACTIVATED:
        new_state, queue_test = ConfigState.DEACTIVATED, False
    elif state == ConfigState.NEW or config.state != ConfigState.DEACTIVATED:
        new_state, queue_test = ConfigState.NEW, True
    else:
        new_state, queue_test = ConfigState.DEACTIVATED, False
    updated = replace(config, url=new_url, state=new_state, version=config.version + 1)
    return UpdatePlan(config=updated, changed=True, queue_test=queue_test)


def can_test(config: WebhookConfig) -> bool:
    return config.state != ConfigState.DEACTIVATED


def is_stale(task: Task, config: WebhookConfig | None) -> bool:
    """A test task is stale once its config moved past the version it was queued for or
    was deactivated: its result must not be written, and nothing is sent (docs/design.md §6.2, §6.3)."""
    return config is None or config.version != task.target_version or config.state == ConfigState.DEACTIVATED


def superseded(task: Task, now: dt.datetime) -> Task:
    return replace(task, state=TaskState.FAILED, error=SUPERSEDED, date_completed=now)


def config_state_after_test(succeeded: bool) -> ConfigState:
    return ConfigState.VALID if succeeded else ConfigState.INVALID


def rotated(config: WebhookConfig, overlap_seconds: int, now: dt.datetime) -> WebhookConfig:
    """The config with a new secret; its current one keeps signing for `overlap_seconds`
    (none when 0). A previous secret still signing from an earlier rotation stops at once:
    at most two secrets ever sign. The state and version do not change."""
    if overlap_seconds <= 0:
        return replace(
            config, secret=generate_secret(), previous_secret=None, previous_secret_expires=None, rotated_at=now
        )
    return replace(
        config,
        rotated_at=now,
        secret=generate_secret(),
        previous_secret=config.secret,
        previous_secret_expires=now + dt.timedelta(seconds=overlap_seconds),
    )
