"""List pages of configs, tasks, events and an event's attempts, newest first.

A page reads the keys of one index partition (or, for events, of several: their shards, and
for a plain list every state's, merged by `storage.merge`), no further than the page needs,
then fetches its items by key (every index projects the keys only: an index entry is
rewritten only when its keys change). What a page reads is bounded: at most
`planning.read_bound` index entries, and the resources they name. An event's attempts are
read from its own partition: the current round's from its state item, earlier rounds' from
their items, newest first by their time-ordered ids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from webhook_service.domain.configs import Task, WebhookConfig
from webhook_service.domain.events import Attempt, Event
from webhook_service.domain.ids import new_time_ordered_id, time_ordered_ms
from webhook_service.domain.queries import ListQuery, Page
from webhook_service.errors import UnknownCursorError
from webhook_service.storage.codec import Item, unmarshal
from webhook_service.storage.event_items import (
    archive_sort_id,
    attempt_from_archive,
    attempts_of_state,
    event_from_items,
)
from webhook_service.storage.items import config_from_item, counts_of, task_from_item
from webhook_service.storage.keys import (
    ARCHIVED_ATTEMPT_PREFIX,
    CONFIG_COUNTS_SK,
    archived_attempt_key,
    event_data_key,
    event_pk,
    id_of_created_sk,
    item_key,
    org_pk,
    read_partitions,
)
from webhook_service.storage.merge import Chunk, merge_bases, merge_newest
from webhook_service.storage.planning import config_total, date_range, plan, query_kwargs, strictly_below
from webhook_service.storage.table import Table

LIST_READERS = 16  # reads of a merged list page in flight at once
BATCH_GET_KEYS = 100  # DynamoDB's most keys in one BatchGetItem

T = TypeVar("T")
V = TypeVar("V")


@dataclass(frozen=True)
class _Kind(Generic[V]):
    """How a resource's index entries become its values: the items to fetch for one id,
    and the value they make (None when an item has gone meanwhile, by its expiry)."""

    keys: Callable[[str, str], list[Item]]
    value: Callable[[list[Item | None]], V | None]


def _one(convert: Callable[[Item], V]) -> Callable[[list[Item | None]], V | None]:
    return lambda items: convert(items[0]) if items[0] is not None else None


def _event(items: list[Item | None]) -> Event | None:
    data, state = items
    return event_from_items(data, state) if data is not None and state is not None else None


KINDS: dict[str, _Kind[Any]] = {
    "webhook_config": _Kind(lambda o, i: [item_key(o, "webhook_config", i)], _one(config_from_item)),
    "task": _Kind(lambda o, i: [item_key(o, "task", i)], _one(task_from_item)),
    "event": _Kind(lambda o, i: [event_data_key(o, i), item_key(o, "event", i)], _event),
}


def _matches(value: Any, filters: dict[str, str]) -> bool:
    return all(str(getattr(value, name)) == wanted for name, wanted in filters.items())


class Lists:
    """Pages of an organisation's lists (`configs`, `tasks`, `events`, `attempts`)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._readers: ThreadPoolExecutor | None = None

    def configs(self, organisation: str, query: ListQuery) -> Page[WebhookConfig]:
        return self._page(organisation, "webhook_config", query)

    def tasks(self, organisation: str, query: ListQuery) -> Page[Task]:
        return self._page(organisation, "task", query)

    def events(self, organisation: str, query: ListQuery) -> Page[Event]:
        return self._page(organisation, "event", query)

    # -- fetching what the index entries name -------------------------------------------------

    def _fetch(self, organisation: str, resource: str, entries: list[Item]) -> list[Any]:
        """The values the index entries name, in their order (those gone meanwhile left out),
        in BatchGetItem calls of at most 100 keys run at once."""
        kind = KINDS[resource]
        ids = [str(entry["id"]) if "id" in entry else id_of_created_sk(str(entry["CreatedSK"])) for entry in entries]
        wanted = [kind.keys(organisation, resource_id) for resource_id in ids]
        flat = [key for keys in wanted for key in keys]
        batches = [flat[n : n + BATCH_GET_KEYS] for n in range(0, len(flat), BATCH_GET_KEYS)]
        found: dict[tuple[str, str], Item] = {}
        reads = [partial(self.table.batch_get, batch, consistent=False) for batch in batches]
        for part in self._run_together(reads):
            found.update(part)
        values = [kind.value([found.get((k["PK"], k["SK"])) for k in keys]) for keys in wanted]
        return [value for value in values if value is not None]

    # -- index pages --------------------------------------------------------------------------

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
            if cursor is None:
                raise UnknownCursorError(name)
            if name == "after_id":  # older than the cursor
                bound = strictly_below(cursor["CreatedSK"])
                high = min(high, bound) if high else bound
            else:  # newer than the cursor
                bound = cursor["CreatedSK"] + " "
                low = max(low, bound) if low else bound
        return low, high, counts_of(found.get((counts_key["PK"], counts_key["SK"])))

    def _page(self, organisation: str, resource: str, query: ListQuery) -> Page[Any]:
        """One page of a list, newest first. What it reads is bounded by the page, whatever
        the organisation's history (`planning.read_bound`).

        - Filters an index serves (`state=`; a task's `target=`; an event's `type=`) and the
          date bounds are key conditions: the page reads the `limit + 1` newest matches.
        - Any other filter is applied to a window of the `limit + 1` newest items in the
          index's range (for events, the merged budget): the page holds the matches among
          them (perhaps fewer than `limit`, even none) and `has_more` says the window did not
          reach the end; `next_after_id` names the last item read, where the next page starts.
        - `total_count` counts every match (ignoring the cursors) when that costs nothing
          more: the page held every match (no cursor, nothing more), or the list is of
          configs without date bounds (their counts by state are kept, `config_counts_item`).
          Otherwise it is the number of matches the page read, a lower bound, and
          `total_count_capped` is true.
        """
        index, bases, filters = plan(organisation, resource, query.filters)
        counted = resource == "webhook_config" and not query.date_bounds
        has_cursor = bool(query.after_id or query.before_id)
        counts: dict[str, int] | None = None
        if has_cursor:
            low, high, counts = self._cursor_bounds(organisation, resource, query, counted)
        else:
            low, high = date_range(query.date_bounds)
        if low is not None and high is not None and low > high:
            values: list[Any] = []
            last_read: str | None = None
        else:
            window = query.limit + 1
            if len(bases) == 1 and len(read_partitions(resource, bases)) == 1:
                values, last_read = self._query(organisation, resource, index, bases[0], low, high, filters, window)
            else:
                values, last_read = self._merged(organisation, resource, index, bases, low, high, filters, window)
        has_more = len(values) > query.limit or last_read is not None
        matched = len(values)
        values = values[: query.limit]
        next_after_id = None
        if has_more:
            next_after_id = values[-1].id if len(values) == query.limit else last_read
        if not has_cursor and not has_more:
            return Page(items=values, has_more=False, total_count=matched)
        if not counted:
            return Page(values, has_more, matched, total_count_capped=True, next_after_id=next_after_id)
        if not has_cursor:
            counts = counts_of(self.table.get({"PK": org_pk(organisation), "SK": CONFIG_COUNTS_SK}))
        if counts is not None:
            return Page(values, has_more, config_total(counts, query.filters), next_after_id=next_after_id)
        # An organisation made before counts were kept: count with a Query (exact, not bounded).
        total = self._count(index, bases[0], *date_range(query.date_bounds), filters)
        return Page(values, has_more, total, next_after_id=next_after_id)

    def _query(
        self,
        organisation: str,
        resource: str,
        index: str,
        partition: str,
        low: str | None,
        high: str | None,
        filters: dict[str, str],
        window: int,
    ) -> tuple[list[Any], str | None]:
        """The matches among the `window` newest entries of the range, and, when entries
        beyond the window may remain and a filter was applied, the id of the last one read
        (None when the range ended within it)."""
        kwargs = query_kwargs(self.table.name, index, partition, low, high, {})
        entries: list[Item] = []
        while len(entries) < window:
            kwargs["Limit"] = window - len(entries)
            response = self.table.query(**kwargs)
            entries.extend(unmarshal(raw) for raw in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                kwargs.pop("ExclusiveStartKey", None)
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        values = [v for v in self._fetch(organisation, resource, entries) if _matches(v, filters)]
        if not filters or "ExclusiveStartKey" not in kwargs:
            return values, None  # without a filter, the window's last item tells `has_more`
        return values, id_of_created_sk(str(unmarshal(kwargs["ExclusiveStartKey"])["CreatedSK"]))

    def _merged(
        self,
        organisation: str,
        resource: str,
        index: str,
        bases: list[str],
        low: str | None,
        high: str | None,
        filters: dict[str, str],
        need: int,
    ) -> tuple[list[Any], str | None]:
        """`_query` over the shards of each of `bases`, merged (`storage.merge`): the `need`
        newest matches, or, when a read budget ran out first, fewer and the id of the entry
        where the next page starts. Each base partition (a state's, for a plain list of
        events) is merged from its shards on its own, within its own budget, then the bases
        are merged: partitions of very different sizes never share one budget. With a
        filter, each read's entries are fetched and filtered as they come; without, only the
        page's are fetched."""
        merged = [
            self._merged_base(
                organisation, resource, index, read_partitions(resource, [base]), low, high, filters, need
            )
            for base in bases
        ]
        entries, stop = merge_bases(merged, need)
        values = [e["_value"] for e in entries] if filters else self._fetch(organisation, resource, entries)
        return values, (id_of_created_sk(stop) if stop is not None else None)

    def _merged_base(
        self,
        organisation: str,
        resource: str,
        index: str,
        partitions: list[str],
        low: str | None,
        high: str | None,
        filters: dict[str, str],
        need: int,
    ) -> tuple[list[Item], str | None]:
        """The `need` newest matching entries of one base partition's shards, and the sort
        key where its read stopped when its budget ran out first."""
        requests = [query_kwargs(self.table.name, index, p, low, high, {}) for p in partitions]

        def fetch(shard: int, resume: Any, size: int) -> Chunk:
            kwargs = {**requests[shard], "Limit": size}
            if resume is not None:
                kwargs["ExclusiveStartKey"] = resume
            response = self.table.query(**kwargs)
            entries = [unmarshal(raw) for raw in response.get("Items", [])]
            if filters:
                fetched = {v.id: v for v in self._fetch(organisation, resource, entries) if _matches(v, filters)}
                entries = [
                    {**e, "_value": fetched[id_of_created_sk(e["CreatedSK"])]}
                    for e in entries
                    if id_of_created_sk(e["CreatedSK"]) in fetched
                ]
            next_key = response.get("LastEvaluatedKey")
            return Chunk(
                items=entries,
                read=int(response.get("ScannedCount", 0)),
                last=str(unmarshal(next_key)["CreatedSK"]) if next_key else None,
                resume=next_key,
            )

        return merge_newest(len(partitions), need, fetch, self._run_together)

    def _run_together(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Run independent reads at once (a merge's round, a page's fetches), on a pool kept
        for the process."""
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

    # -- an event's attempts ----------------------------------------------------------------

    def attempts(self, organisation: str, query: ListQuery) -> Page[Attempt]:
        """A page of one event's attempts (named by the query's `event` filter), newest first:
        the current round's, from the event's state item, then earlier rounds', read from the
        event's partition no further than the page needs (`limit + 1` of them at most, plus
        the state item and the cursors' items)."""
        event_id = query.filters["event"]
        state = self.table.get(item_key(organisation, "event", event_id))
        current = sorted(attempts_of_state(state) if state else [], key=archive_sort_id, reverse=True)
        low, high = _sort_id_range(query)
        for name, cursor_id in (("after_id", query.after_id), ("before_id", query.before_id)):
            if cursor_id:
                found = self._attempt_sort_id(organisation, event_id, current, cursor_id)
                if found is None:
                    raise UnknownCursorError(name)
                if name == "after_id":
                    high = min(high, found) if high else found
                else:
                    low = max(low, found) if low else found
        wanted = query.limit + 1

        def inside(sort_id: str, attempt: Attempt) -> bool:
            return (low is None or sort_id > low) and (high is None or sort_id < high) and _dated(attempt, query)

        page = [a for a in current if inside(archive_sort_id(a), a)][:wanted]
        if len(page) < wanted:
            page.extend(self._archived(organisation, event_id, low, high, wanted - len(page), query))
        has_more, matched = len(page) > query.limit, len(page)
        page = page[: query.limit]
        if not (query.after_id or query.before_id) and not has_more:
            return Page(page, False, matched)
        return Page(page, has_more, matched, total_count_capped=True, next_after_id=page[-1].id if has_more else None)

    def _archived(
        self, organisation: str, event_id: str, low: str | None, high: str | None, wanted: int, query: ListQuery
    ) -> list[Attempt]:
        """Up to `wanted` attempts of earlier rounds with sort ids strictly between `low` and
        `high`, newest first, within the query's dates."""
        bottom = ARCHIVED_ATTEMPT_PREFIX + (low or "")
        top = ARCHIVED_ATTEMPT_PREFIX + (high or "~")
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :bottom AND :top",
            "ExpressionAttributeValues": {
                ":pk": {"S": event_pk(organisation, event_id)},
                ":bottom": {"S": bottom},
                ":top": {"S": top},
            },
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        found: list[Attempt] = []
        while len(found) < wanted:
            kwargs["Limit"] = wanted - len(found) + 1  # BETWEEN includes the bounds: one may be a cursor
            response = self.table.query(**kwargs)
            for raw in response.get("Items", []):
                item = unmarshal(raw)
                if item["SK"] in (bottom, top):
                    continue
                attempt = attempt_from_archive(item)
                if _dated(attempt, query):
                    found.append(attempt)
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found[:wanted]

    def _attempt_sort_id(self, organisation: str, event_id: str, current: list[Attempt], attempt_id: str) -> str | None:
        """Where an attempt of the event sorts (its sort id), or None when the event has no
        such attempt. An attempt recorded before ids were time-ordered is looked for among
        its event's earlier rounds (a filtered read of that event's attempts alone)."""
        for attempt in current:
            if attempt.id == attempt_id:
                return archive_sort_id(attempt)
        if time_ordered_ms(attempt_id) is not None:
            found = self.table.get(archived_attempt_key(organisation, event_id, attempt_id))
            return attempt_id if found else None
        response = self.table.query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
            FilterExpression="id = :id",
            ExpressionAttributeValues={
                ":pk": {"S": event_pk(organisation, event_id)},
                ":prefix": {"S": ARCHIVED_ATTEMPT_PREFIX},
                ":id": {"S": attempt_id},
            },
            ConsistentRead=True,
        )
        items = [unmarshal(raw) for raw in response.get("Items", [])]
        return str(items[0]["SK"])[len(ARCHIVED_ATTEMPT_PREFIX) :] if items else None


def _sort_id_range(query: ListQuery) -> tuple[str | None, str | None]:
    """Exclusive sort-id bounds that hold every attempt within the query's dates (attempts
    are checked against the dates themselves too: ids keep milliseconds, dates microseconds)."""
    bounds = query.date_bounds
    starts = [bounds[k] for k in ("gte", "gt") if k in bounds]
    ends = [bounds[k] for k in ("lte", "lt") if k in bounds]
    low = new_time_ordered_id(int(max(starts).timestamp() * 1000) - 1, (1 << 74) - 1) if starts else None
    high = new_time_ordered_id(int(min(ends).timestamp() * 1000) + 1, 0) if ends else None
    return low, high


def _dated(attempt: Attempt, query: ListQuery) -> bool:
    created, bounds = attempt.date_created, query.date_bounds
    return (
        ("gte" not in bounds or created >= bounds["gte"])
        and ("gt" not in bounds or created > bounds["gt"])
        and ("lte" not in bounds or created <= bounds["lte"])
        and ("lt" not in bounds or created < bounds["lt"])
    )
