"""Recover tasks (docs/design.md §19.2): the task item, written once before its first job and
then moved on by one conditional write a step, and the window's `failed` events of a config,
read oldest first from the ByState index.

A step's writes are conditional on the cursor the step read, so of two copies of one step
(SQS delivers a job at least once) one saves its progress and the other stops: the task's
steps never fork into two chains. Each step makes the task due again from its time (ByOpen),
so the sweep takes a recovery back only when its steps stopped coming."""

from __future__ import annotations

import datetime as dt
from typing import Any

from webhook_service.domain.configs import Task, TaskState
from webhook_service.domain.events import Event, EventState
from webhook_service.domain.recovery import Progress
from webhook_service.errors import ConflictError
from webhook_service.storage import unit as writes
from webhook_service.storage.codec import Item, unmarshal
from webhook_service.storage.event_items import event_from_items
from webhook_service.storage.items import task_item
from webhook_service.storage.keys import (
    INDEX_BY_STATE,
    event_data_key,
    item_key,
    open_keys,
    read_partitions,
    state_pk,
)
from webhook_service.storage.organisations import Organisations
from webhook_service.storage.table import Table
from webhook_service.storage.unit import UnitOfWork
from webhook_service.timefmt import format_datetime

BATCH_GET_KEYS = 100  # DynamoDB's most keys in one BatchGetItem


class Recoveries:
    """A recover task's writes, and the reads of its window."""

    def __init__(self, table: Table, organisations: Organisations) -> None:
        self.table = table
        self.organisations = organisations

    def create(self, task: Task, open_tests_below: int | None = None) -> None:
        """Store a new recover task (pending, in ByOpen from its creation), counted in its
        organisation's open tasks in the same transaction: OpenTestsLimitError when it has as
        many as it may (`open_tests_below` when given)."""
        unit = UnitOfWork(self.table).add(writes.put(task_item(task), "attribute_not_exists(PK)"))
        if task.counted:
            self.organisations.count_open_test(unit, task.organisation, open_tests_below)
        unit.commit()

    def failed_page(
        self, organisation: str, config_id: str, since: dt.datetime, until: dt.datetime, after: str | None, limit: int
    ) -> list[tuple[str, Event | None]]:
        """The next `limit` entries of the organisation's `failed` events created in
        `[since, until)` after the cursor `after` (an index sort key), oldest first, each with
        its event when that is still `failed` and its last attempt went to `config_id` (else
        None: read, and passed over). Fewer than `limit` entries: the window is done."""
        low, high = after or format_datetime(since), format_datetime(until)
        entries: list[str] = []
        keys: dict[str, Item] = {}
        for partition in read_partitions("event", [state_pk(organisation, "event", EventState.FAILED)]):
            response = self.table.query(
                IndexName=INDEX_BY_STATE,
                KeyConditionExpression="StatePK = :pk AND CreatedSK BETWEEN :low AND :high",
                ExpressionAttributeValues={":pk": {"S": partition}, ":low": {"S": low}, ":high": {"S": high}},
                ScanIndexForward=True,
                Limit=limit + 1,  # the cursor's own entry is read again (BETWEEN includes it)
            )
            for raw in response.get("Items", []):
                entry = unmarshal(raw)
                if entry["CreatedSK"] != after:
                    entries.append(entry["CreatedSK"])
                    keys[entry["CreatedSK"]] = {"PK": entry["PK"], "SK": entry["SK"]}
        page = sorted(entries)[:limit]  # the oldest `limit` of every shard's oldest `limit`
        events = self._matching(organisation, config_id, [keys[sk] for sk in page])
        return [(sk, events.get(keys[sk]["PK"])) for sk in page]

    def _matching(self, organisation: str, config_id: str, state_keys: list[Item]) -> dict[str, Event]:
        """The events, by partition, whose state items say `failed` with the last attempt
        to `config_id` (their data items read only for those)."""
        states = [
            item
            for item in self._get_all(state_keys).values()
            if item.get("state") == EventState.FAILED and item.get("webhook_config") == config_id
        ]
        data = self._get_all([event_data_key(organisation, state["id"]) for state in states])
        events: dict[str, Event] = {}
        for state in states:
            published = data.get((state["PK"], event_data_key(organisation, state["id"])["SK"]))
            if published is not None:
                events[state["PK"]] = event_from_items(published, state)
        return events

    def _get_all(self, keys: list[Item]) -> dict[tuple[str, str], Item]:
        found: dict[tuple[str, str], Item] = {}
        for first in range(0, len(keys), BATCH_GET_KEYS):
            found.update(self.table.batch_get(keys[first : first + BATCH_GET_KEYS]))
        return found

    def advance(self, task: Task, cursor: str | None, progress: Progress, now: dt.datetime) -> bool:
        """Save a step's progress (`processing`, the new `cursor`, the counts) if the task is
        still open at the cursor the step read (`task.cursor`), and make it due again from
        `now`; False if another copy of the step saved first, or the task ended."""
        try:
            self.table.update(
                item_key(task.organisation, "task", task.id),
                "SET #s = :processing, StatePK = :spk, date_started = if_not_exists(date_started, :now),"
                " #cursor = :cursor, #result = :result, DueSK = :due, sweeps = :zero",
                ConditionExpression=f"#s IN (:pending, :processing) AND {_at_cursor(task)}",
                ExpressionAttributeNames={"#s": "state", "#cursor": "cursor", "#result": "result"},
                ExpressionAttributeValues={
                    ":processing": TaskState.PROCESSING.value,
                    ":pending": TaskState.PENDING.value,
                    ":spk": state_pk(task.organisation, "task", TaskState.PROCESSING),
                    ":now": format_datetime(now),
                    ":cursor": cursor,
                    ":seen": task.cursor,
                    ":result": progress.result(),
                    ":due": open_keys(task.id, now)["DueSK"],
                    ":zero": 0,
                },
            )
        except ConflictError:
            return False
        return True

    def finish(self, seen: Task, ended: Task) -> bool:
        """Write a recover task's end (`ended`, made from `seen`) if it is still open at the
        cursor `seen` read; the whole item is replaced, so it leaves ByOpen. False if another
        copy of the step got there first, or the task had ended."""
        values: dict[str, Any] = {
            ":pending": TaskState.PENDING.value,
            ":processing": TaskState.PROCESSING.value,
            ":seen": seen.cursor,
        }
        unit = UnitOfWork(self.table).add(
            writes.put(
                task_item(ended),
                f"#s IN (:pending, :processing) AND {_at_cursor(seen)}",
                names={"#s": "state", "#cursor": "cursor"},
                values=values,
            )
        )
        if ended.counted:  # out of its organisation's open tasks, in the same transaction
            self.organisations.uncount_open_test(unit, ended.organisation)
        try:
            unit.commit()
        except ConflictError:
            return False
        return True


def _at_cursor(task: Task) -> str:
    """The condition that the stored task is at the cursor `task` was read with (`:seen`)."""
    return "#cursor = :seen" if task.cursor is not None else "(attribute_not_exists(#cursor) OR #cursor = :seen)"
