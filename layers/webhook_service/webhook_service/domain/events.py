"""Events and their attempts: what publishing makes, where an event goes, resend rules."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from webhook_service.domain.delivery import EXCERPT_MAX_CHARS, QUEUE_UNAVAILABLE, printable
from webhook_service.domain.ids import new_id, new_time_ordered_id
from webhook_service.domain.redaction import redact


class EventState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


EVENT_STATES = tuple(state.value for state in EventState)
EVENT_ENDED_STATES = (EventState.DELIVERED.value, EventState.FAILED.value)
UNCONFIGURED = "unconfigured"  # the error of an event with no valid config to go to
HISTORY_TTL = dt.timedelta(days=30)  # tasks, events and attempts expire; configs, keys, organisations do not
CUT_EXCERPT = "no answer within {seconds:g} s; sent again at once in the slow lane (this try is not counted)"
TEST_EVENT_TYPE = "webhook_config"
TEST_EVENT_ACTION = "test"

# The name of an event's `type` or `action` (docs/design.md §7.8), as publish takes it and the
# events list filters by it: a lowercase letter, then up to 63 lowercase letters, digits or `_`.
EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def is_event_name(value: object) -> bool:
    return isinstance(value, str) and EVENT_NAME.match(value) is not None


@dataclass(frozen=True)
class Event:
    """Something that happened in an organisation, and where its delivery stands."""

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
    resent_at: dt.datetime | None = None  # when the last resend was written (internal)

    @property
    def is_test(self) -> bool:
        """A config's test event (it cannot be resent: a test is made again instead)."""
        return self.type == TEST_EVENT_TYPE and self.action == TEST_EVENT_ACTION

    @property
    def retries(self) -> int:
        """Deliveries attempted after the first."""
        return max(self.attempts - 1, 0)

    @property
    def ended(self) -> bool:
        return self.state in EVENT_ENDED_STATES

    @property
    def expires_at(self) -> int:
        """The unix time the event is forgotten (DynamoDB's TTL), and its attempts with it."""
        return int((self.date_created + HISTORY_TTL).timestamp())


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


def config_test_event(
    organisation: str, config_id: str, config_view: dict[str, Any], key: str, event_id: str, now: dt.datetime
) -> Event:
    """The event a test task delivers: `config_view` is the config as the API shows it,
    without its secret."""
    return Event(
        id=event_id,
        organisation=organisation,
        type=TEST_EVENT_TYPE,
        action=TEST_EVENT_ACTION,
        data=config_view,
        state=EventState.PENDING,
        date_created=now,
        key=key,
        webhook_config=config_id,
    )


def event_failed_to_queue(event: Event, now: dt.datetime) -> Event:
    """The event whose attempt could not be put on the queue (docs/design.md §7.8), or that
    the sweep gave up on (§7.12)."""
    return replace(event, state=EventState.FAILED, error=QUEUE_UNAVAILABLE, date_delivered=now)


def route(key_config: str | None, organisation_default: str | None) -> str | None:
    """The config an event goes to: its key's own config, else the organisation's default."""
    return key_config or organisation_default


def can_resend(event: Event) -> bool:
    """Only an ended event that is not a config's test can be resent."""
    return event.ended and not event.is_test


def resent(event: Event, now: dt.datetime) -> Event:
    """The event re-opened by a resend at `now`: pending, no attempt yet in its new round,
    same id."""
    return replace(
        event,
        resent_at=now,
        state=EventState.PENDING,
        attempts=0,
        next_attempt_at=None,
        claimed_until=None,
        error=None,
        date_delivered=None,
        resends=event.resends + 1,
    )


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
        id=new_time_ordered_id(int(now.timestamp() * 1000)),  # an event's attempts list in id order
        organisation=event.organisation,
        event=event.id,
        webhook_config=config_id,
        url=url,
        status_code=status_code,
        error=error,
        duration_ms=max(0, duration_ms),
        response_excerpt=printable(excerpt, EXCERPT_MAX_CHARS),
        date_created=now,
        expires_at=expires_at,
        counted=counted,
    )
