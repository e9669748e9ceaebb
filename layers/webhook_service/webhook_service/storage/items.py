"""Item mappers of the organisation's partition: configs, their counts, tasks, keys and the
organisation, each to its item and back (the keys from `keys`; events: `event_items`)."""

from __future__ import annotations

import datetime as dt

from webhook_service.domain.configs import ConfigState, Task, TaskState, WebhookConfig
from webhook_service.domain.events import HISTORY_TTL
from webhook_service.domain.tenants import Key, KeyState, Organisation
from webhook_service.storage.codec import Item
from webhook_service.storage.keys import (
    ACTIVE_CONFIGS,
    CONFIG_COUNTS_SK,
    ORGANISATION_SK,
    count_attribute,
    created_sk,
    open_keys,
    org_pk,
    related_pk,
    sort_key,
    state_pk,
    type_pk,
)
from webhook_service.timefmt import format_datetime

CONFIG_STATES = tuple(state.value for state in ConfigState)  # the counts item's, in this order


def parse_datetime(value: str | None) -> dt.datetime | None:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC) if value else None


def config_item(config: WebhookConfig) -> Item:
    created = format_datetime(config.date_created)
    prefix = type_pk(config.organisation, "webhook_config")
    item: Item = {
        "PK": org_pk(config.organisation),
        "SK": sort_key("webhook_config", config.id),
        "StatePK": state_pk(config.organisation, "webhook_config", config.state),
        "CreatedSK": created_sk(created, config.id),
        "resource": "webhook_config",
        "id": config.id,
        "organisation": config.organisation,
        "url": config.url,
        "secret": config.secret,
        "state": str(config.state),
        "version": config.version,
        "date_created": created,
    }
    if config.state != ConfigState.DEACTIVATED:
        item["TypePK"] = prefix  # sparse: plain lists leave deactivated configs out
    if config.slow_until is not None:
        item["slow_until"] = config.slow_until
    if config.open_test is not None:
        item["open_test"] = config.open_test
    if config.rate_limit is not None:
        item["rate_limit"] = config.rate_limit
    if config.previous_secret is not None and config.previous_secret_expires is not None:
        item["previous_secret"] = config.previous_secret
        item["previous_secret_expires"] = format_datetime(config.previous_secret_expires)
    if config.rotated_at is not None:
        item["rotated_at"] = format_datetime(config.rotated_at)
    return item


def config_from_item(item: Item) -> WebhookConfig:
    date_created = parse_datetime(item["date_created"])
    assert date_created is not None
    return WebhookConfig(
        id=item["id"],
        organisation=item["organisation"],
        url=item["url"],
        secret=item["secret"],
        state=ConfigState(item["state"]),
        version=item["version"],
        date_created=date_created,
        slow_until=item.get("slow_until"),
        open_test=item.get("open_test"),
        previous_secret=item.get("previous_secret"),
        previous_secret_expires=parse_datetime(item.get("previous_secret_expires")),
        rotated_at=parse_datetime(item.get("rotated_at")),
        rate_limit=int(item["rate_limit"]) if item.get("rate_limit") is not None else None,
    )


def config_counts_item(organisation: str, counts: dict[str, int]) -> Item:
    """The organisation's config counts by state (`state_<state>`), kept exact by every
    write that creates a config or changes its state (in the same transaction).
    `counted` marks counts kept since the organisation was created: an organisation made
    before counts were kept has none, and its config lists count with a Query instead."""
    item: Item = {"PK": org_pk(organisation), "SK": CONFIG_COUNTS_SK, "counted": True}
    item.update({count_attribute(state): int(counts.get(state, 0)) for state in CONFIG_STATES})
    # The configs not deactivated, the number the organisation's quota holds (design.md §18).
    item[ACTIVE_CONFIGS] = sum(int(counts.get(s, 0)) for s in CONFIG_STATES if s != ConfigState.DEACTIVATED)
    return item


def task_item(task: Task) -> Item:
    created = format_datetime(task.date_created)
    prefix = type_pk(task.organisation, "task")
    item: Item = {
        "PK": org_pk(task.organisation),
        "SK": sort_key("task", task.id),
        "TypePK": prefix,
        "StatePK": state_pk(task.organisation, "task", task.state),
        "RelatedPK": related_pk(task.organisation, "task", task.target),
        "CreatedSK": created_sk(created, task.id),
        "resource": "task",
        "id": task.id,
        "organisation": task.organisation,
        "key": task.key,
        "type": task.type,
        "target": task.target,
        "target_version": task.target_version,
        "state": str(task.state),
        "error": task.error,
        "result": task.result,
        "date_created": created,
        "expires_at": int((task.date_created + HISTORY_TTL).timestamp()),
    }
    # Left out until set, so that `if_not_exists` can set them once (see start_task).
    if task.date_started:
        item["date_started"] = format_datetime(task.date_started)
    if task.date_completed:
        item["date_completed"] = format_datetime(task.date_completed)
    if task.event_id:
        item["event_id"] = task.event_id
    if task.counted:
        item["counted"] = True
    if task.cursor:
        item["cursor"] = task.cursor
    if not task.ended:
        item.update(open_keys(task.id, task.date_created))
    return item


def task_from_item(item: Item) -> Task:
    date_created = parse_datetime(item["date_created"])
    assert date_created is not None
    return Task(
        id=item["id"],
        organisation=item["organisation"],
        key=item["key"],
        type=item["type"],
        target=item["target"],
        target_version=item["target_version"],
        state=TaskState(item["state"]),
        error=item.get("error"),
        result=item.get("result"),
        date_created=date_created,
        date_started=parse_datetime(item.get("date_started")),
        date_completed=parse_datetime(item.get("date_completed")),
        event_id=item.get("event_id"),
        counted=bool(item.get("counted", False)),
        cursor=item.get("cursor"),
    )


def counts_of(item: Item | None) -> dict[str, int] | None:
    """Config counts by state from their item; None unless kept since the organisation began."""
    if item is None or not item.get("counted"):
        return None
    return {state: int(item.get(count_attribute(state), 0)) for state in CONFIG_STATES}


def organisation_item(organisation: Organisation) -> Item:
    """A new organisation's item (its open tests are added by the writes that count them)."""
    return {
        "PK": org_pk(organisation.id),
        "SK": ORGANISATION_SK,
        "resource": "organisation",
        "id": organisation.id,
        "name": organisation.name,
        "webhook_config_default": organisation.webhook_config_default,
        "date_created": format_datetime(organisation.date_created),
    }


def organisation_from_item(item: Item) -> Organisation:
    date_created = parse_datetime(item["date_created"])
    assert date_created is not None
    return Organisation(
        id=item["id"],
        name=item["name"],
        date_created=date_created,
        webhook_config_default=item.get("webhook_config_default"),
        open_tests=int(item.get("open_tests", 0)),
    )


def key_item(key: Key) -> Item:
    return {
        "PK": org_pk(key.organisation),
        "SK": sort_key("key", key.id),
        "resource": "key",
        "id": key.id,
        "organisation": key.organisation,
        "webhook_config": key.webhook_config,
        "state": key.state.value,
        "token_hash": key.token_hash,
        "date_created": format_datetime(key.date_created),
    }


def key_from_item(item: Item) -> Key:
    date_created = parse_datetime(item["date_created"])
    assert date_created is not None
    return Key(
        id=item["id"],
        organisation=item["organisation"],
        token_hash=item["token_hash"],
        state=KeyState(item["state"]),
        date_created=date_created,
        webhook_config=item.get("webhook_config"),
    )
