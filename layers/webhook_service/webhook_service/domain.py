"""Domain rules of webhook configs and test tasks: states, versions and what an update does.

Pure code: no HTTP, no event shapes, no boto3.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import uuid
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from webhook_service.signing import SECRET_PREFIX
from webhook_service.timefmt import format_datetime, utcnow


class ConfigState(StrEnum):
    """A webhook config's state (docs/design.md §6.1). A StrEnum member is its string: it
    compares equal to it and JSON writes it as it. The domain values hold the members (the
    item mappers make them from the stored strings); items, resources (`to_resource`) and
    error params hold the plain string (`str(state)`), so what is stored and answered is
    the same text, and the same Python value, as before."""

    NEW = "new"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"


class TaskState(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class EventState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class KeyState(StrEnum):
    """An API key's state: a deactivated key signs nothing in and cannot be changed."""

    ACTIVE = "active"
    DEACTIVATED = "deactivated"


class TaskType(StrEnum):
    CONFIG_TEST = "webhook_config.test"


# The same as plain strings, for validation's lists of accepted values and for messages.
CONFIG_STATES = tuple(state.value for state in ConfigState)
UPDATABLE_STATES = (ConfigState.NEW.value, ConfigState.DEACTIVATED.value)
TASK_STATES = tuple(state.value for state in TaskState)
TASK_ENDED_STATES = (TaskState.SUCCEEDED.value, TaskState.FAILED.value)
TASK_TYPE_TEST = TaskType.CONFIG_TEST.value
EVENT_STATES = tuple(state.value for state in EventState)
EVENT_ENDED_STATES = (EventState.DELIVERED.value, EventState.FAILED.value)
SUPERSEDED = "superseded"
TASK_TYPES = tuple(type_.value for type_ in TaskType)
MAX_OPEN_TESTS = 100  # test tasks pending or processing, per organisation (fair use)
FAST_LANE_OPEN_TESTS = 5  # an organisation's open tests beyond these take the slow lane
SLOW_MARK_SECONDS = 600  # an endpoint that took longer than the fast lanes wait is slow this long


def new_id() -> str:
    return str(uuid.uuid4())


def is_uuid(value: object) -> bool:
    """True for the canonical lowercase form of a UUID, the only form this service hands out;
    False for anything else a JSON body can hold (numbers, null, lists)."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@dataclass(frozen=True)
class WebhookConfig:
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

    def previous_secret_at(self, now: dt.datetime) -> str | None:
        """The previous secret while it still signs at `now`, else None."""
        if self.previous_secret is None or self.previous_secret_expires is None:
            return None
        return self.previous_secret if now < self.previous_secret_expires else None

    def is_slow(self, now: dt.datetime) -> bool:
        """Whether its endpoint recently took longer than the fast lanes wait."""
        return self.slow_until is not None and self.slow_until > now.timestamp()

    def to_resource(self, *, with_secret: bool = True, now: dt.datetime | None = None) -> dict[str, Any]:
        """The API's view. `previous_secret_expires` is shown while the previous secret still
        signs (null once it has stopped, or when there is none); like the secret, it is left
        out of the view without secrets that a test event carries, whose bytes must not
        depend on when they are made."""
        resource: dict[str, Any] = {
            "id": self.id,
            "resource": "webhook_config",
            "organisation": self.organisation,
            "url": self.url,
            "state": str(self.state),
            "date_created": format_datetime(self.date_created),
        }
        if with_secret:
            resource["secret"] = self.secret
            expires = self.previous_secret_expires
            signing = expires is not None and self.previous_secret_at(now or utcnow()) is not None
            resource["previous_secret_expires"] = format_datetime(expires) if signing and expires else None
        return resource


@dataclass(frozen=True)
class Task:
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

    @property
    def ended(self) -> bool:
        return self.state in TASK_ENDED_STATES

    def to_resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": "task",
            "organisation": self.organisation,
            "key": self.key,
            "type": self.type,
            "target": self.target,
            "state": str(self.state),
            "error": self.error,
            "result": self.result,
            "date_created": format_datetime(self.date_created),
            "date_started": _optional_datetime(self.date_started),
            "date_completed": _optional_datetime(self.date_completed),
        }


def _optional_datetime(value: dt.datetime | None) -> str | None:
    return format_datetime(value) if value else None


def new_config(organisation: str, url: str, now: dt.datetime) -> WebhookConfig:
    return WebhookConfig(
        id=new_id(),
        organisation=organisation,
        url=url,
        secret=generate_secret(),
        state=ConfigState.NEW,
        version=1,
        date_created=now,
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


QUEUE_UNAVAILABLE = "queue-unavailable"  # the error of what the queue lost (docs/design.md §4.6)


def failed_to_queue(task: Task, now: dt.datetime) -> Task:
    """The task whose job could not be put on the queue (docs/design.md §6.4), or that the
    sweep gave up on (§7.12)."""
    return replace(task, state=TaskState.FAILED, error=QUEUE_UNAVAILABLE, date_completed=now)


def event_failed_to_queue(event: Event, now: dt.datetime) -> Event:
    """The event whose attempt could not be put on the queue (docs/design.md §7.8), or that
    the sweep gave up on (§7.12)."""
    return replace(event, state=EventState.FAILED, error=QUEUE_UNAVAILABLE, date_delivered=now)


# The name of an event's `type` or `action` (docs/design.md §7.8), as publish takes it and the
# events list filters by it: a lowercase letter, then up to 63 lowercase letters, digits or `_`.
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def is_event_name(value: object) -> bool:
    return isinstance(value, str) and EVENT_NAME.match(value) is not None


@dataclass(frozen=True)
class UpdatePlan:
    """What an accepted update does to a config: its new form and whether to test it."""

    config: WebhookConfig
    changed: bool
    queue_test: bool = field(default=False)


def plan_update(config: WebhookConfig, url: str | None, state: str | None) -> UpdatePlan:
    """Apply docs/design.md §6.1 to an update request of `url` and/or `state`.

    - `state: deactivated` (with or without a url) deactivates; nothing is tested.
    - `state: new` re-tests from any state, reactivating a deactivated config.
    - a `url` alone re-tests unless the config is deactivated, where it is only stored.
    Every update that names a url or a state moves the version on, so a test queued
    before it can never write its result over it.
    """
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


@dataclass(frozen=True)
class Event:
    id: str
    organisation: str
    type: str
    action: str
    data: dict[str, Any]
    state: EventState
    date_created: dt.datetime
    key: str | None = None  # the key whose config routes it (internal)
    attempts: int = 0  # deliveries attempted so far (internal; `retries` is derived)
    next_attempt_at: int | None = None  # unix time the next attempt is due (internal)
    # Unix time until which attempt `attempts` is claimed by the job making it: set by the
    # claim, gone once the attempt is recorded. A claim whose time ran out can be taken over.
    claimed_until: int | None = None
    webhook_config: str | None = None
    error: str | None = None
    date_delivered: dt.datetime | None = None
    # How many times it was resent (internal): each resend starts a new round of attempts,
    # and a job of an earlier round does nothing (design.md §13).
    resends: int = 0

    @property
    def is_test(self) -> bool:
        """A config's test event (it cannot be resent: a test is made again instead)."""
        return self.type == "webhook_config" and self.action == "test"

    @property
    def retries(self) -> int:
        """Deliveries attempted after the first."""
        return max(self.attempts - 1, 0)

    @property
    def ended(self) -> bool:
        return self.state in EVENT_ENDED_STATES

    def to_resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": "event",
            "organisation": self.organisation,
            "type": self.type,
            "action": self.action,
            "data": self.data,
            "state": str(self.state),
            "retries": self.retries,
            "webhook_config": self.webhook_config,
            "error": self.error,
            "date_created": format_datetime(self.date_created),
            "date_delivered": _optional_datetime(self.date_delivered),
        }


def config_test_event(task: Task, config: WebhookConfig, event_id: str, now: dt.datetime) -> Event:
    """The event a test task delivers: the config, without its secret."""
    return Event(
        id=event_id,
        organisation=config.organisation,
        type="webhook_config",
        action="test",
        data=config.to_resource(with_secret=False),
        state=EventState.PENDING,
        date_created=now,
        key=task.key,
        webhook_config=config.id,
    )


# -- events: publishing, routing and retries -----------------------------------------------

MAX_ATTEMPTS = 5
# When attempt n+1 is due after attempt n failed (docs/design.md §7.10): 1 min, 10 min, 1 h, 3 h.
RETRY_DELAYS = (dt.timedelta(minutes=1), dt.timedelta(minutes=10), dt.timedelta(hours=1), dt.timedelta(hours=3))
RETRY_JITTER = 0.1  # each delay is moved by up to ±10%, so receivers are not hit in waves
UNCONFIGURED = "unconfigured"
# Secret-like field names (see is_secret_field): a word anywhere in the name, or at its end.
_SECRET_WORDS = frozenset(
    {"secret", "secrets", "password", "passwords", "passwd", "passphrase", "authorization", "credential", "credentials"}
)
_SECRET_ENDINGS = (("token",), ("token", "hash"), ("apikey",), ("api", "key"), ("private", "key"), ("privatekey",))
_NAME_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def new_event(
    organisation: str, type_: str, action: str, data: dict[str, Any], key: str | None, now: dt.datetime
) -> Event:
    return Event(
        id=new_id(),
        organisation=organisation,
        type=type_,
        action=action,
        data=redact(data),
        state=EventState.PENDING,
        date_created=now,
        key=key,
    )


def name_words(name: str) -> tuple[str, ...]:
    """A field name's words, lowercased: split at anything not a letter or digit and where
    camelCase changes case (`X-Api-Key`, `apiKey` and `api_key` all give `api`, `key`)."""
    return tuple(word.lower() for word in _NAME_WORD.findall(name))


def is_secret_field(name: str) -> bool:
    """Whether an event's data field of this name is dropped (the README states the rule).

    A name is secret-like when one of its words is secret(s), password(s), passwd,
    passphrase, authorization or credential(s), or when it ends with the word token, the
    words token hash, api key or private key, or the word apikey or privatekey. Case and
    separators do not matter. So `client_secret`, `accessToken`, `X-Api-Key` go, while
    `session`, `tokens_used`, `token_count`, `key`, `public_key` stay.
    """
    words = name_words(name)
    return any(word in _SECRET_WORDS for word in words) or any(
        words[-len(ending) :] == ending for ending in _SECRET_ENDINGS
    )


def redact(value: Any) -> Any:
    """The data of an event never carries a secret-like field (is_secret_field), however
    deep; values are never inspected."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items() if not is_secret_field(k)}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def route(key_config: str | None, organisation_default: str | None) -> str | None:
    """The config an event goes to: its key's own config, else the organisation's default."""
    return key_config or organisation_default


def next_attempt_delay(
    attempt: int, gone: bool, retry_after: dt.timedelta | None, jitter: float
) -> dt.timedelta | None:
    """How long after failed attempt `attempt` (1-based) the next one is due, or None when
    the event has had its last attempt or the receiver said it is gone.

    `jitter` is a number in [-1, 1] (random in production, fixed in tests). A `retry_after`
    the receiver asked for can push the next attempt later than the schedule, up to the
    schedule's longest delay, never earlier. Which answers mean "gone" and which carry a
    delay is the HTTP side's business (webhook_service.httpcodes).
    """
    if attempt >= MAX_ATTEMPTS or gone:
        return None
    delay = RETRY_DELAYS[attempt - 1] * (1 + RETRY_JITTER * max(-1.0, min(1.0, jitter)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_DELAYS[-1]))
    return delay


# -- attempts, resend and secret rotation (design.md §12-§14) ------------------------------

EXCERPT_MAX_CHARS = 512
ROTATION_OVERLAP_DEFAULT = 86400  # seconds the previous secret keeps signing after a rotation
ROTATION_OVERLAP_MAX = 604800  # a week
CUT_EXCERPT = "no answer within {seconds:g} s; sent again at once in the slow lane (this try is not counted)"


@dataclass(frozen=True)
class Attempt:
    """One request sent to a receiver: a test's or an event's delivery try."""

    id: str
    organisation: str
    event: str
    webhook_config: str
    url: str
    status_code: int | None
    error: str | None
    duration_ms: int
    response_excerpt: str
    date_created: dt.datetime
    expires_at: int  # the unix time its event expires (internal)
    counted: bool = True  # False for a fast lane's cut request, not one of the event's 5 (internal)

    def to_resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": "attempt",
            "organisation": self.organisation,
            "event": self.event,
            "webhook_config": self.webhook_config,
            "url": self.url,
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "response_excerpt": self.response_excerpt,
            "date_created": format_datetime(self.date_created),
        }


def new_attempt(
    event: Event,
    config_id: str,
    url: str,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    excerpt: str,
    now: dt.datetime,
    expires_at: int,
    *,
    counted: bool = True,
) -> Attempt:
    return Attempt(
        id=new_id(),
        organisation=event.organisation,
        event=event.id,
        webhook_config=config_id,
        url=url,
        status_code=status_code,
        error=error,
        duration_ms=max(0, duration_ms),
        response_excerpt=excerpt[:EXCERPT_MAX_CHARS],
        date_created=now,
        expires_at=expires_at,
        counted=counted,
    )


def can_resend(event: Event) -> bool:
    """Only an ended event that is not a config's test can be resent."""
    return event.ended and not event.is_test


def resent(event: Event) -> Event:
    """The event re-opened by a resend: pending, no attempt yet in its new round, same id."""
    return replace(
        event,
        state=EventState.PENDING,
        attempts=0,
        next_attempt_at=None,
        claimed_until=None,
        error=None,
        date_delivered=None,
        resends=event.resends + 1,
    )


def rotated(config: WebhookConfig, overlap_seconds: int, now: dt.datetime) -> WebhookConfig:
    """The config with a new secret; its current one keeps signing for `overlap_seconds`
    (none when 0). A previous secret still signing from an earlier rotation stops at once:
    at most two secrets ever sign. The state and version do not change."""
    if overlap_seconds <= 0:
        return replace(config, secret=generate_secret(), previous_secret=None, previous_secret_expires=None)
    return replace(
        config,
        secret=generate_secret(),
        previous_secret=config.secret,
        previous_secret_expires=now + dt.timedelta(seconds=overlap_seconds),
    )


# -- keys and organisations -------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """An API key of an organisation. Only its token's hash is kept (never shown); its
    `webhook_config` routes the events published with it (None: the organisation's default)."""

    id: str
    organisation: str
    token_hash: str
    state: KeyState
    date_created: dt.datetime
    webhook_config: str | None = None

    def to_resource(self) -> dict[str, Any]:
        """The API's view (and the operator's commands'): never the token or its hash."""
        return {
            "id": self.id,
            "resource": "key",
            "organisation": self.organisation,
            "webhook_config": self.webhook_config,
            "state": str(self.state),
            "date_created": format_datetime(self.date_created),
        }


@dataclass(frozen=True)
class Organisation:
    """An organisation: its name, the config its events go to when their key names none
    (`webhook_config_default`), and how many of its test tasks are open (internal, counted
    by the store for the fair-use cap)."""

    id: str
    name: str
    date_created: dt.datetime
    webhook_config_default: str | None = None
    open_tests: int = 0

    def to_resource(self) -> dict[str, Any]:
        """Its own fields as the API shows them (the API adds its configs and state)."""
        return {
            "id": self.id,
            "resource": "organisation",
            "name": self.name,
            "webhook_config_default": self.webhook_config_default,
            "date_created": format_datetime(self.date_created),
        }


# -- who calls, and what a list asks for -------------------------------------------------------

DEFAULT_LIMIT = 10  # a list page's size when the caller names none


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key and its organisation."""

    key_id: str
    organisation: str
    state: str


@dataclass(frozen=True)
class ListQuery:
    """A list request: equality filters, a date range, a page size and cursors."""

    filters: dict[str, str] = field(default_factory=dict)
    date_bounds: dict[str, dt.datetime] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT
    after_id: str | None = None
    before_id: str | None = None


@dataclass(frozen=True)
class Overdue:
    """A task or event that has not ended and was due before the sweep's threshold, as the
    store read it: `sweeps` is how many times the sweep queued it again, `due` the due mark
    the store's conditional write checks (it changes whenever the work moves on)."""

    work: Task | Event
    sweeps: int
    due: str

    @property
    def kind(self) -> str:
        return "task" if isinstance(self.work, Task) else "event"
