"""The sweep's queries: test tasks that have not ended and are overdue, found through the
sparse `ByOpen` index, and the conditional write that marks one swept."""

from __future__ import annotations

import datetime as dt

from webhook_service.domain.queries import Overdue
from webhook_service.errors import ConflictError
from webhook_service.storage.codec import unmarshal
from webhook_service.storage.items import task_from_item
from webhook_service.storage.keys import INDEX_BY_OPEN, OPEN_SHARDS, item_key, open_keys, open_pk
from webhook_service.storage.table import Table
from webhook_service.timefmt import format_datetime


class OverdueWork:
    """What the sweep reads and writes."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def find(self, due_before: dt.datetime, limit: int) -> list[Overdue]:
        """Test tasks that have not ended and were due before `due_before`, at most `limit`
        of each ByOpen partition, oldest first."""
        found: list[Overdue] = []
        high = format_datetime(due_before)
        for shard in range(OPEN_SHARDS):
            response = self.table.query(
                IndexName=INDEX_BY_OPEN,
                KeyConditionExpression="OpenPK = :pk AND DueSK < :high",
                ExpressionAttributeValues={":pk": {"S": open_pk(shard)}, ":high": {"S": high}},
                Limit=limit,
            )
            for raw in response.get("Items", []):
                item = unmarshal(raw)
                if item.get("resource") == "task":  # events are never in ByOpen (jobs.event_attempts)
                    found.append(Overdue(task_from_item(item), int(item.get("sweeps", 0)), item["DueSK"]))
        return found

    def mark_swept(self, overdue: Overdue, now: dt.datetime) -> bool:
        """Count one sweep of an overdue task or event and make it due again from `now`,
        unless it changed since it was read (ended, or moved on); False then."""
        work = overdue.work
        try:
            self.table.update(
                item_key(work.organisation, overdue.kind, work.id),
                "SET sweeps = if_not_exists(sweeps, :zero) + :one, DueSK = :due",
                ConditionExpression="DueSK = :read",
                ExpressionAttributeValues={
                    ":zero": 0,
                    ":one": 1,
                    ":due": open_keys(work.id, now)["DueSK"],
                    ":read": overdue.due,
                },
            )
        except ConflictError:
            return False
        return True
