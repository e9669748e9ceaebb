"""Webhook configs and their test tasks, in the organisation's partition: creation with the
first test, updates, rotation, the slow mark, each test's start and end, and the counts of
the organisation's configs by state (kept with every write that moves a config's state)."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from webhook_service.domain.configs import ConfigState, Task, TaskState, WebhookConfig
from webhook_service.domain.events import Attempt, Event
from webhook_service.domain.limits import MAX_CONFIGS
from webhook_service.errors import ConfigQuotaError, ConflictError
from webhook_service.storage import unit as writes
from webhook_service.storage.codec import Item
from webhook_service.storage.event_items import archived_attempt_item
from webhook_service.storage.events import event_puts
from webhook_service.storage.items import config_from_item, config_item, counts_of, task_from_item, task_item
from webhook_service.storage.keys import (
    ACTIVE_CONFIGS,
    CONFIG_COUNTS_SK,
    CONFIG_QUOTA,
    count_attribute,
    item_key,
    org_pk,
    state_pk,
)
from webhook_service.storage.organisations import Organisations
from webhook_service.storage.table import Table
from webhook_service.storage.unit import UnitOfWork
from webhook_service.timefmt import format_datetime

OUTCOME_TRIES = 3  # reads of a config whose state moved while its test ran, before the outcome stands alone


def _not_deactivated(state: str | None) -> int:
    return 0 if state is None or state == ConfigState.DEACTIVATED else 1


def config_count_change(
    organisation: str, before: str | None, after: str, cap: int = MAX_CONFIGS
) -> list[dict[str, Any]]:
    """The action (none when the state does not change) that moves one config from state
    `before` (None: a new config) to `after` in its organisation's counts, and the number
    of its configs not deactivated with it. One that adds a config not deactivated (a
    create, a reactivation) is refused unless the organisation has fewer than its cap (its
    own `config_quota`, else `cap`); one that takes one away needs that number kept. Counts
    from before counts were kept (no `counted`) are moved but hold nothing."""
    if before == after:
        return []
    names = {"#a": count_attribute(after)}
    values: Item = {":one": 1}
    expression = "ADD #a :one"
    if before is not None:
        names["#b"] = count_attribute(before)
        values[":less"] = -1
        expression += ", #b :less"
    change = _not_deactivated(after) - _not_deactivated(before)
    condition = None
    if change:
        names.update({"#active": ACTIVE_CONFIGS, "#counted": "counted"})
        values[":change"] = change
        expression += ", #active :change"
        condition = "attribute_not_exists(#counted) OR attribute_exists(#active)"
        if change > 0:
            names["#quota"] = CONFIG_QUOTA
            values[":cap"] = cap
            below_cap = "#active < #quota OR (attribute_not_exists(#quota) AND #active < :cap)"
            condition = f"attribute_not_exists(#counted) OR {below_cap}"
    key = {"PK": org_pk(organisation), "SK": CONFIG_COUNTS_SK}
    return [writes.update(key, expression, condition=condition, names=names, values=values)]


class _CountsRefusedError(Exception):
    """The organisation's config counts refused a change: its quota is full, or the number
    the quota holds was never written (counts kept before it existed)."""


# No rotation written since the request arrived (less the window of requests made at once).
_NOT_ROTATED_SINCE = "(attribute_not_exists(rotated_at) OR rotated_at < :before)"
BACKFILL_TRIES = 3  # writes of the number of configs not deactivated, while tests end beside them


def _task_put(task: Task, condition: str, values: Item) -> dict[str, Any]:
    return writes.put(task_item(task), condition, names={"#s": "state"}, values=values)


class Configs:
    """A config's writes are conditional on the version (and state) it was read with; a
    task's on the state it was read in. The organisation's open tests are counted by
    `organisations` in the same transaction as each counted task's creation and end."""

    def __init__(self, table: Table, organisations: Organisations) -> None:
        self.table = table
        self.organisations = organisations

    @property
    def open_tests_cap(self) -> int:
        return self.organisations.open_tests_cap

    # -- reads ---------------------------------------------------------------------------

    def get(self, organisation: str, config_id: str) -> WebhookConfig | None:
        item = self.table.get(item_key(organisation, "webhook_config", config_id))
        return config_from_item(item) if item else None

    def get_task(self, organisation: str, task_id: str) -> Task | None:
        item = self.table.get(item_key(organisation, "task", task_id))
        return task_from_item(item) if item else None

    def get_task_and_config(
        self, organisation: str, task_id: str, config_id: str
    ) -> tuple[Task | None, WebhookConfig | None]:
        """A task and a config in one strongly consistent round trip."""
        task_key, config_key = (
            item_key(organisation, "task", task_id),
            item_key(organisation, "webhook_config", config_id),
        )
        found = self.table.batch_get([task_key, config_key])
        task = found.get((task_key["PK"], task_key["SK"]))
        config = found.get((config_key["PK"], config_key["SK"]))
        return (task_from_item(task) if task else None), (config_from_item(config) if config else None)

    def counts(self, organisation: str) -> dict[str, int] | None:
        """The organisation's configs by state, or None when it has no kept counts."""
        return counts_of(self.table.get({"PK": org_pk(organisation), "SK": CONFIG_COUNTS_SK}))

    # -- configs -------------------------------------------------------------------------

    def create(self, config: WebhookConfig, task: Task, open_tests_below: int | None = None) -> None:
        """The config and its first test task, both or neither (OpenTestsLimitError when the
        organisation has as many open tests as it may, or `open_tests_below` when given)."""
        unit = UnitOfWork(self.table).extend(
            [
                writes.put(config_item(config), "attribute_not_exists(PK)"),
                writes.put(task_item(task), "attribute_not_exists(PK)"),
            ]
        )
        self._count_configs(unit, config.organisation, None, config.state)
        self._count_in(unit, task, open_tests_below)
        self._commit_counted(unit, config.organisation)

    def replace(
        self, config: WebhookConfig, expected_version: int, task: Task | None, open_tests_below: int | None = None
    ) -> None:
        """Write an updated config (and its test task) if nobody changed it since it was read.

        Raises ConflictError when the stored version is no longer `expected_version`, or its
        secret was rotated meanwhile (a rotation keeps the version; the whole item is put). The
        stored config is read first, for its state: the write is conditional on that state
        too, so that the organisation's config counts move with it exactly.
        """
        stored = self.table.get(item_key(config.organisation, "webhook_config", config.id))
        if stored is None or stored.get("version") != expected_version:
            raise ConflictError("ConditionalCheckFailedException", [])
        unit = UnitOfWork(self.table).add(
            writes.put(
                config_item(config),
                "version = :v AND #s = :was AND secret = :secret",
                names={"#s": "state"},
                values={":v": expected_version, ":was": stored["state"], ":secret": config.secret},
            )
        )
        self._count_configs(unit, config.organisation, stored["state"], config.state)
        if task is not None:
            unit.add(writes.put(task_item(task), "attribute_not_exists(PK)"))
            self._count_in(unit, task, open_tests_below)
        self._commit_counted(unit, config.organisation)

    # -- the number of configs not deactivated, and its cap ----------------------------------

    def _count_configs(self, unit: UnitOfWork, organisation: str, before: str | None, after: str) -> None:
        for action in config_count_change(organisation, before, after):
            unit.add(action, refused=_CountsRefusedError)

    def _commit_counted(self, unit: UnitOfWork, organisation: str) -> None:
        """Commit a unit that moves the organisation's config counts. ConfigQuotaError when
        its quota is full; counts kept before the quota existed get their number of configs
        not deactivated written first (once), then the unit is tried again."""
        try:
            unit.commit()
            return
        except _CountsRefusedError:
            if not self._count_active(organisation):
                raise ConfigQuotaError(self.quota(organisation)) from None
        try:
            unit.commit()
        except _CountsRefusedError:
            raise ConfigQuotaError(self.quota(organisation)) from None

    def _count_active(self, organisation: str) -> bool:
        """Write the number of configs not deactivated on counts kept before it was, from
        the counts by state (conditional on them as read: every write that moves it needs
        it, so none can change it meanwhile); False when it was there already."""
        key = {"PK": org_pk(organisation), "SK": CONFIG_COUNTS_SK}
        for _ in range(BACKFILL_TRIES):
            item = self.table.get(key)
            if item is None or not item.get("counted") or ACTIVE_CONFIGS in item:
                return False
            names, values = {"#active": ACTIVE_CONFIGS}, {":n": 0}
            conditions = ["attribute_not_exists(#active)"]
            for n, state in enumerate(state for state in ConfigState if state != ConfigState.DEACTIVATED):
                names[f"#s{n}"] = count_attribute(state)
                values[f":v{n}"] = int(item.get(count_attribute(state), 0))
                values[":n"] += values[f":v{n}"]
                conditions.append(f"(#s{n} = :v{n} OR (attribute_not_exists(#s{n}) AND :v{n} = :zero))")
            values[":zero"] = 0
            try:
                self.table.update(
                    key,
                    "SET #active = :n",
                    ConditionExpression=" AND ".join(conditions),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
            except ConflictError:
                continue  # a test ended meanwhile (moving new to valid): read them again
            return True
        return True  # written by another request meanwhile, or still moving: let the unit say

    def quota(self, organisation: str) -> int:
        """The most configs not deactivated the organisation may have."""
        item = self.table.get({"PK": org_pk(organisation), "SK": CONFIG_COUNTS_SK}) or {}
        return int(item.get(CONFIG_QUOTA, MAX_CONFIGS))

    def set_quota(self, organisation: str, cap: int | None) -> None:
        """Give the organisation its own cap on configs not deactivated (None: the default)."""
        key = {"PK": org_pk(organisation), "SK": CONFIG_COUNTS_SK}
        if cap is None:
            self.table.update(key, "REMOVE #q", ExpressionAttributeNames={"#q": CONFIG_QUOTA})
        else:
            self.table.update(
                key,
                "SET #q = :cap",
                ExpressionAttributeNames={"#q": CONFIG_QUOTA},
                ExpressionAttributeValues={":cap": cap},
            )

    # -- rotation and the slow mark ------------------------------------------------------------

    def rotate_secret(self, seen: WebhookConfig, rotated: WebhookConfig, rotated_before: dt.datetime) -> bool:
        """Store a rotated secret if the config still has the secret it was read with, is
        not deactivated, and its last rotation was written before `rotated_before` (when the
        request arrived, less the window of requests made at once); False otherwise. Of
        rotations made at once one wins, even one that reads the config after the winner
        wrote. Nothing else of the config changes: not its state, not its version."""
        assert rotated.rotated_at is not None
        values: Item = {
            ":new": rotated.secret,
            ":seen": seen.secret,
            ":deactivated": ConfigState.DEACTIVATED.value,
            ":now": format_datetime(rotated.rotated_at),
            ":before": format_datetime(rotated_before),
        }
        if rotated.previous_secret is not None and rotated.previous_secret_expires is not None:
            expression = (
                "SET secret = :new, rotated_at = :now, previous_secret = :previous, previous_secret_expires = :expires"
            )
            values[":previous"] = rotated.previous_secret
            values[":expires"] = format_datetime(rotated.previous_secret_expires)
        else:
            expression = "SET secret = :new, rotated_at = :now REMOVE previous_secret, previous_secret_expires"
        try:
            self.table.update(
                item_key(seen.organisation, "webhook_config", seen.id),
                expression,
                ConditionExpression=f"secret = :seen AND #s <> :deactivated AND {_NOT_ROTATED_SINCE}",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=values,
            )
        except ConflictError:
            return False
        return True

    def mark_slow(self, config: WebhookConfig, until: int) -> None:
        """Send the config's jobs to the slow lane until the unix time `until`."""
        with contextlib.suppress(ConflictError):
            self.table.update(
                item_key(config.organisation, "webhook_config", config.id),
                "SET slow_until = :until",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeValues={":until": until},
            )

    def clear_slow(self, config: WebhookConfig) -> None:
        """Send the config's jobs to the fast lanes again."""
        with contextlib.suppress(ConflictError):
            self.table.update(
                item_key(config.organisation, "webhook_config", config.id),
                "REMOVE slow_until",
                ConditionExpression="attribute_exists(slow_until)",
            )

    def invalidate(self, config: WebhookConfig) -> bool:
        """Make a `valid` config `invalid` (its receiver answered 410), unless it changed;
        its organisation's config counts move in the same transaction."""
        unit = UnitOfWork(self.table).extend(
            [
                writes.update(
                    item_key(config.organisation, "webhook_config", config.id),
                    "SET #s = :invalid, StatePK = :spk",
                    condition="version = :v AND #s = :valid",
                    names={"#s": "state"},
                    values={
                        ":invalid": ConfigState.INVALID.value,
                        ":valid": ConfigState.VALID.value,
                        ":v": config.version,
                        ":spk": state_pk(config.organisation, "webhook_config", ConfigState.INVALID),
                    },
                ),
                *config_count_change(config.organisation, ConfigState.VALID, ConfigState.INVALID),
            ]
        )
        try:
            unit.commit()
        except ConflictError:
            return False
        return True

    # -- test tasks ----------------------------------------------------------------------

    def _count_in(self, unit: UnitOfWork, task: Task, below: int | None) -> None:
        if task.counted:
            self.organisations.count_open_test(unit, task.organisation, below)

    def create_test_task(self, config: WebhookConfig, task: Task, open_tests_below: int | None = None) -> None:
        """Store a test task and make it the config's open test, if the config is still at
        the version it was made for, not deactivated, and its open test is still the one it
        was read with (`config.open_test`). ConflictError otherwise; OpenTestsLimitError when
        the organisation has as many open tests as it may."""
        condition = "version = :v AND #s <> :d AND "
        values: Item = {":v": config.version, ":d": ConfigState.DEACTIVATED.value, ":task": task.id}
        if config.open_test is None:
            condition += "attribute_not_exists(open_test)"
        else:
            condition += "open_test = :seen"
            values[":seen"] = config.open_test
        unit = UnitOfWork(self.table).extend(
            [
                writes.update(
                    item_key(config.organisation, "webhook_config", config.id),
                    "SET open_test = :task",
                    condition=condition,
                    names={"#s": "state"},
                    values=values,
                ),
                writes.put(task_item(task), "attribute_not_exists(PK)"),
            ]
        )
        self._count_in(unit, task, open_tests_below)
        unit.commit()

    def _end_task(self, task: Task, condition: str, values: Item) -> None:
        """Write a task's end if `condition` holds of the stored task, counting it out of its
        organisation's open tests in the same transaction."""
        unit = UnitOfWork(self.table).add(_task_put(task, condition, values))
        if task.counted:
            self.organisations.uncount_open_test(unit, task.organisation)
        unit.commit()

    def finish_pending_task(self, task: Task) -> None:
        """Write a task's end while it is still pending (used when its job was never queued)."""
        self._end_task(task, "#s = :p", {":p": TaskState.PENDING.value})

    def end_task(self, task: Task) -> bool:
        """Write a task's end unless it has already ended; False if it had."""
        try:
            self._end_task(
                task,
                "attribute_exists(PK) AND #s IN (:pending, :processing)",
                {":pending": TaskState.PENDING.value, ":processing": TaskState.PROCESSING.value},
            )
        except ConflictError:
            return False
        return True

    def start_task(self, task: Task, event_id: str, now: dt.datetime) -> Task | None:
        """Mark a test task `processing` and fix its event id (kept from an earlier start, so
        a job run again re-sends the same event). None if the task has already ended."""
        try:
            stored = self.table.update(
                item_key(task.organisation, "task", task.id),
                "SET #s = :processing, StatePK = :spk, date_started = if_not_exists(date_started, :now),"
                " event_id = if_not_exists(event_id, :event)",
                ConditionExpression="#s IN (:pending, :processing)",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":processing": TaskState.PROCESSING.value,
                    ":pending": TaskState.PENDING.value,
                    ":spk": state_pk(task.organisation, "task", TaskState.PROCESSING),
                    ":now": format_datetime(now),
                    ":event": event_id,
                },
                ReturnValues="ALL_NEW",
            )
        except ConflictError:
            return None
        return task_from_item(stored)

    def record_test_outcome(
        self, config: WebhookConfig, new_state: ConfigState, task: Task, event: Event, attempt: Attempt | None = None
    ) -> str:
        """Write a test's end: the task, its event, its attempt and the config's new state,
        all at once.

        The config is written only if it is still at the task's version and not deactivated;
        otherwise the task and event are written alone. Returns `applied`, `stale` (the
        config had moved on) or `duplicate` (the task had already ended elsewhere). The
        config's write is conditional on the state it had when read (so that the counts
        move with it): if only its state changed since (another test of the same version
        ended), it is read again and the write tried again."""
        task_end = _task_put(task, "#s = :processing", {":processing": TaskState.PROCESSING.value})
        seen: WebhookConfig | None = config
        for _ in range(OUTCOME_TRIES):
            if seen is None or seen.version != task.target_version or seen.state == ConfigState.DEACTIVATED:
                break
            unit = UnitOfWork(self.table).extend(
                [
                    writes.update(
                        item_key(config.organisation, "webhook_config", config.id),
                        "SET #s = :state, StatePK = :spk",
                        condition="version = :v AND #s = :was",
                        names={"#s": "state"},
                        values={
                            ":state": new_state.value,
                            ":spk": state_pk(config.organisation, "webhook_config", new_state),
                            ":v": task.target_version,
                            ":was": str(seen.state),
                        },
                    ),
                    task_end,
                ]
            )
            self._end_with(unit, task, event, attempt)
            unit.extend(config_count_change(config.organisation, seen.state, new_state))
            try:
                unit.commit()
                return "applied"
            except ConflictError as exc:
                if len(exc.reasons) > 1 and exc.reasons[1] is not None:
                    return "duplicate"
            seen = self.get(config.organisation, config.id)
        unit = UnitOfWork(self.table).add(task_end)
        self._end_with(unit, task, event, attempt)
        try:
            unit.commit()
        except ConflictError:
            return "duplicate"
        return "stale"

    def _end_with(self, unit: UnitOfWork, task: Task, event: Event, attempt: Attempt | None) -> None:
        """What a test's end writes besides the task (and the config): its event, its
        attempt, and the task out of its organisation's open tests."""
        unit.extend(event_puts(event, [attempt] if attempt is not None else []))
        if task.counted:
            self.organisations.uncount_open_test(unit, task.organisation)

    def record_cut_test(self, task: Task, attempt: Attempt) -> bool:
        """Store the attempt of a test whose request the fast lane cut (the task goes on, in
        the slow lane), if the task is still processing; False if it has ended meanwhile. It
        is kept in the test event's partition, as an earlier round's attempt is."""
        unit = UnitOfWork(self.table).extend(
            [
                writes.update(
                    item_key(task.organisation, "task", task.id),
                    "SET cut_attempts = if_not_exists(cut_attempts, :zero) + :one",
                    condition="#s = :processing",
                    names={"#s": "state"},
                    values={":processing": TaskState.PROCESSING.value, ":zero": 0, ":one": 1},
                ),
                writes.put(archived_attempt_item(attempt)),
            ]
        )
        try:
            unit.commit()
        except ConflictError:
            return False
        return True
