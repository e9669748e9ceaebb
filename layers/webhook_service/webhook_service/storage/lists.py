"""List pages of configs, tasks, events and an event's attempts, newest first: each a Query
of one index partition (or, for events, of its shards, merged by `storage.merge`), read no
further than the page needs. What each page reads is bounded: at most `limit + 1` items plus
LIST_BOOKKEEPING_ITEMS, and a page of events MERGE_SLACK more per shard (`planning.read_bound`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from webhook_service.domain.configs import Task, WebhookConfig
from webhook_service.domain.events import Attempt, Event
from webhook_service.domain.queries import ListQuery, Page
from webhook_service.errors import UnknownCursorError
from webhook_service.storage.codec import Item, unmarshal
from webhook_service.storage.items import (
    attempt_from_item,
    config_from_item,
    counts_of,
    event_from_item,
    task_from_item,
)
from webhook_service.storage.keys import CONFIG_COUNTS_SK, id_of_created_sk, item_key, org_pk, read_partitions
from webhook_service.storage.merge import Chunk, merge_newest
from webhook_service.storage.planning import config_total, date_range, plan, query_kwargs, strictly_below
from webhook_service.storage.table import Table

LIST_READERS = 16  # reads of a merged list page in flight at once

T = TypeVar("T")


class Lists:
    """Pages of an organisation's lists (`configs`, `tasks`, `events`, `attempts`)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._readers: ThreadPoolExecutor | None = None

    def configs(self, organisation: str, query: ListQuery) -> Page[WebhookConfig]:
        return self._page(organisation, "webhook_config", query).map(config_from_item)

    def tasks(self, organisation: str, query: ListQuery) -> Page[Task]:
        return self._page(organisation, "task", query).map(task_from_item)

    def events(self, organisation: str, query: ListQuery) -> Page[Event]:
        return self._page(organisation, "event", query).map(event_from_item)

    def attempts(self, organisation: str, query: ListQuery) -> Page[Attempt]:
        """A page of one event's attempts, named by the query's `event` filter."""
        return self._page(organisation, "attempt", query).map(attempt_from_item)

    def _cursor_bounds(
        self, organisation: str, resource: str, query: ListQuery, counted: bool
    ) -> tuple[str | None, str | None, dict[str, int] | None]:
        """The sort-key range the cursors leave of the date bounds' (low, high), and the
        config counts when the total will need them: the cursors' items and the counts are
        read in one request."""
        low, high = date_range(query.date_bounds)
        cursors = {name: cid for name, cid in (("after_id", query.after_id), ("before_id", query.before_id)) if cid}
        # One key per item: both cursors may name the same one (BatchGetItem refuses duplicates).
        keys = [item_key(organisation, resource, cid) for cid in dict.fromkeys(cursors.values())]
        counts_key = {"PK": org_pk(organisation), "SK": CONFIG_COUNTS_SK}
        if counted:
            keys.append(counts_key)
        found = self.table.batch_get(keys)
        for name, cursor_id in cursors.items():
            cursor_key = item_key(organisation, resource, cursor_id)
            cursor = found.get((cursor_key["PK"], cursor_key["SK"]))
            if cursor is None or (resource == "attempt" and cursor.get("event") != query.filters.get("event")):
                raise UnknownCursorError(name)
            if name == "after_id":  # older than the cursor
                bound = strictly_below(cursor["CreatedSK"])
                high = min(high, bound) if high else bound
            else:  # newer than the cursor
                bound = cursor["CreatedSK"] + " "
                low = max(low, bound) if low else bound
        return low, high, counts_of(found.get((counts_key["PK"], counts_key["SK"])))

    def _page(self, organisation: str, resource: str, query: ListQuery) -> Page[Item]:
        """One page of a list, newest first. What it reads is bounded by the page: at most
        `limit + 1` items of an index, plus LIST_BOOKKEEPING_ITEMS (the cursors' items and
        the config counts), whatever the organisation's history.

        - Filters an index serves (`state=`; a task's `target=`; an event's `type=`) and the
          date bounds are key conditions: the page reads the `limit + 1` newest matches.
        - Any other filter is applied to a window of the `limit + 1` newest items in the
          index's range: the page holds the matches among them (perhaps fewer than `limit`,
          even none) and `has_more` says the window did not reach the end; `next_after_id`
          names the last item read, where the next page starts.
        - `total_count` counts every match (ignoring the cursors) when that costs nothing
          more: the page held every match (no cursor, nothing more), or the list is of
          configs without date bounds (their counts by state are kept, `config_counts_item`).
          Otherwise it is the number of matches the page read, a lower bound, and
          `total_count_capped` is true.
        """
        index, partition, filters = plan(organisation, resource, query.filters)
        counted = resource == "webhook_config" and not query.date_bounds
        has_cursor = bool(query.after_id or query.before_id)
        counts: dict[str, int] | None = None
        if has_cursor:
            low, high, counts = self._cursor_bounds(organisation, resource, query, counted)
        else:
            low, high = date_range(query.date_bounds)
        if low is not None and high is not None and low > high:
            items: list[Item] = []
            last_read: str | None = None
        else:
            partitions = read_partitions(resource, partition)
            if len(partitions) == 1:
                items, last_read = self._query(index, partition, low, high, filters, window=query.limit + 1)
            else:
                items, last_read = self._merged_query(index, partitions, low, high, filters, need=query.limit + 1)
        has_more = len(items) > query.limit or last_read is not None
        matched = len(items)
        items = items[: query.limit]
        next_after_id = None
        if has_more:
            next_after_id = items[-1]["id"] if len(items) == query.limit else last_read
        if not has_cursor and not has_more:
            return Page(items=items, has_more=False, total_count=matched)
        if not counted:
            return Page(items, has_more, matched, total_count_capped=True, next_after_id=next_after_id)
        if not has_cursor:
            counts = counts_of(self.table.get({"PK": org_pk(organisation), "SK": CONFIG_COUNTS_SK}))
        if counts is not None:
            return Page(items, has_more, config_total(counts, query.filters), next_after_id=next_after_id)
        # An organisation made before counts were kept: count with a Query (exact, not bounded).
        total = self._count(index, partition, *date_range(query.date_bounds), filters)
        return Page(items, has_more, total, next_after_id=next_after_id)

    def _query(
        self, index: str, partition: str, low: str | None, high: str | None, filters: dict[str, str], window: int
    ) -> tuple[list[Item], str | None]:
        """The matches among the `window` newest items of the range (DynamoDB's `Limit`
        counts the items it reads, before the filter), and, when items beyond the window
        may remain, the id of the last one read (None when the range ended within it)."""
        kwargs = query_kwargs(self.table.name, index, partition, low, high, filters)
        items: list[Item] = []
        read = 0
        while read < window:
            kwargs["Limit"] = window - read
            response = self.table.query(**kwargs)
            read += int(response.get("ScannedCount", 0))
            items.extend(unmarshal(raw) for raw in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items, None
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        if not filters:
            return items, None  # the window's last item tells `has_more`
        return items, id_of_created_sk(str(unmarshal(kwargs["ExclusiveStartKey"])["CreatedSK"]))

    def _merged_query(
        self, index: str, partitions: list[str], low: str | None, high: str | None, filters: dict[str, str], need: int
    ) -> tuple[list[Item], str | None]:
        """`_query` over the shards of one index partition, merged (`storage.merge`): the
        `need` newest matches, or, when the read budget ran out first, fewer and the id of the
        item where the next page starts."""
        requests = [query_kwargs(self.table.name, index, p, low, high, filters) for p in partitions]

        def fetch(shard: int, resume: Any, size: int) -> Chunk:
            kwargs = {**requests[shard], "Limit": size}
            if resume is not None:
                kwargs["ExclusiveStartKey"] = resume
            response = self.table.query(**kwargs)
            next_key = response.get("LastEvaluatedKey")
            return Chunk(
                items=[unmarshal(raw) for raw in response.get("Items", [])],
                read=int(response.get("ScannedCount", 0)),
                last=str(unmarshal(next_key)["CreatedSK"]) if next_key else None,
                resume=next_key,
            )

        items, stop = merge_newest(len(partitions), need, fetch, self._run_together)
        return items, (id_of_created_sk(stop) if stop is not None else None)

    def _run_together(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Run independent reads at once (a merge's round), on a pool kept for the process."""
        if len(calls) <= 1:
            return [call() for call in calls]
        if self._readers is None:
            self._readers = ThreadPoolExecutor(max_workers=LIST_READERS, thread_name_prefix="list-read")
        return list(self._readers.map(lambda call: call(), calls))

    def _count(self, index: str, partition: str, low: str | None, high: str | None, filters: dict[str, str]) -> int:
        if low is not None and high is not None and low > high:
            return 0
        kwargs = query_kwargs(self.table.name, index, partition, low, high, filters)
        kwargs["Select"] = "COUNT"
        total = 0
        while True:
            response = self.table.query(**kwargs)
            total += int(response.get("Count", 0))
            if "LastEvaluatedKey" not in response:
                return total
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
