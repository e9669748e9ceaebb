"""Tables written by earlier layouts, brought to this one (keys.py): an event saved whole in
one item, with its attempts in items of their own (the layout of 2026-11), or both in the
organisation's partition (before that), becomes its two items (what was published, what
changes) and its attempts become its earlier rounds' attempt records. Nothing else changes.

`convert` is pure, for one item; `Migration` runs it over a table (the operator command
line's `migrate-layout`): it reads the table in parallel segments, writes each converted
item (a put of the same key twice writes the same item: it can be run again, and resumed
after a stop), and deletes the old item once its replacement is written. Events keep
working during it: a job reads the new items, and an old event's job finds its state there
once it is converted (it waits a little until then, jobs.event_attempts)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from webhook_service import jsontext
from webhook_service.domain.events import Attempt, Event, EventState
from webhook_service.storage.codec import Item, marshal, unmarshal
from webhook_service.storage.event_items import archived_attempt_item, event_data_item, event_state_item
from webhook_service.storage.items import parse_datetime
from webhook_service.storage.table import Table

BATCH_WRITE_SIZE = 25  # BatchWriteItem's limit
SEGMENTS = 4  # parallel scan segments


def _is_old_event(item: Item) -> bool:
    return item.get("resource") == "event" and item.get("SK") != "STATE" and "date_created" in item and "type" in item


def _is_old_attempt(item: Item) -> bool:
    return item.get("resource") == "attempt" and not str(item.get("PK", "")).startswith("EVENT#")


def is_old(item: Item) -> bool:
    """Whether an item is of an earlier layout (an event or an attempt item of its own)."""
    return _is_old_event(item) or _is_old_attempt(item)


def old_event(item: Item) -> Event:
    date_created = parse_datetime(item["date_created"])
    assert date_created is not None
    data = item["data"]
    return Event(
        id=item["id"],
        organisation=item["organisation"],
        type=item["type"],
        action=item["action"],
        data=jsontext.loads(data) if isinstance(data, str) else dict(data),
        state=EventState(item["state"]),
        date_created=date_created,
        key=item.get("key"),
        attempts=int(item.get("attempts", 0)),
        next_attempt_at=item.get("next_attempt_at"),
        claimed_until=item.get("claimed_until"),
        webhook_config=item.get("webhook_config"),
        error=item.get("error"),
        date_delivered=parse_datetime(item.get("date_delivered")),
        resends=int(item.get("resends", 0)),
    )


def old_attempt(item: Item) -> Attempt:
    date_created = parse_datetime(item["date_created"])
    assert date_created is not None
    return Attempt(
        id=item["id"],
        organisation=item["organisation"],
        event=item["event"],
        webhook_config=item["webhook_config"],
        url=item["url"],
        status_code=item.get("status_code"),
        error=item.get("error"),
        duration_ms=int(item.get("duration_ms", 0)),
        response_excerpt=item.get("response_excerpt") or "",
        date_created=date_created,
        expires_at=int(item["expires_at"]),
        counted=bool(item.get("counted", True)),
    )


def convert(item: Item) -> list[Item]:
    """The items of this layout that replace an item of an earlier one (the item itself,
    alone, when it is not of an earlier layout)."""
    if _is_old_event(item):
        event = old_event(item)
        state = event_state_item(event)
        if event.claimed_until is not None:
            state["claimed_until"] = event.claimed_until
        return [event_data_item(event), state]
    if _is_old_attempt(item):
        return [archived_attempt_item(old_attempt(item))]
    return [item]


def in_current_layout(items: list[Item]) -> list[Item]:
    """Every item of a table's content, converted (a saved local table, loaded)."""
    return [new for item in items for new in convert(item)]


@dataclass
class Migrated:
    read: int = 0
    converted: int = 0  # old items replaced
    written: int = 0  # items written in their place


class Migration:
    """Converts a table in place (see the module's docstring)."""

    def __init__(self, table: Table, segments: int = SEGMENTS) -> None:
        self.table = table
        self.segments = segments

    def run(self) -> Migrated:
        with ThreadPoolExecutor(max_workers=self.segments, thread_name_prefix="migrate") as pool:
            parts = list(pool.map(self._segment, range(self.segments)))
        total = Migrated()
        for part in parts:
            total.read += part.read
            total.converted += part.converted
            total.written += part.written
        return total

    def _pages(self, segment: int) -> Iterator[list[Item]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table.name,
            "Segment": segment,
            "TotalSegments": self.segments,
            "FilterExpression": "#r IN (:event, :attempt)",
            "ExpressionAttributeNames": {"#r": "resource"},
            "ExpressionAttributeValues": marshal({":event": "event", ":attempt": "attempt"}),
            "ConsistentRead": True,
        }
        while True:
            page = self.table.client.scan(**kwargs)
            yield [unmarshal(raw) for raw in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _segment(self, segment: int) -> Migrated:
        done = Migrated()
        for page in self._pages(segment):
            done.read += len(page)
            old = [item for item in page if is_old(item)]
            new = [converted for item in old for converted in convert(item)]
            self._batch([{"PutRequest": {"Item": marshal(item)}} for item in new])
            self._batch([{"DeleteRequest": {"Key": marshal({"PK": i["PK"], "SK": i["SK"]})}} for i in old])
            done.converted += len(old)
            done.written += len(new)
        return done

    def _batch(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), BATCH_WRITE_SIZE):
            pending: Any = requests[start : start + BATCH_WRITE_SIZE]
            for _ in range(10):
                left = self.table.client.batch_write_item(RequestItems={self.table.name: pending})
                pending = left.get("UnprocessedItems", {}).get(self.table.name, [])
                if not pending:
                    break
            else:
                from webhook_service.errors import DependencyError

                raise DependencyError(f"{len(pending)} items were left unprocessed")
