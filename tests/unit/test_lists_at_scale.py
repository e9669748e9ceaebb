"""Lists whose reads are bounded by the page: at most limit + 1 items of an index plus
LIST_BOOKKEEPING_ITEMS, whatever the organisation holds; `total_count` exact where that is
free (the page held every match, or kept config counts), else capped (design.md §15)."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.support import BASE_TIME, as_dynamodb
from webhook_service.domain.configs import ConfigState, TaskState, new_config, new_test_task
from webhook_service.domain.events import Event, EventState, new_event
from webhook_service.domain.queries import ListQuery
from webhook_service.storage.codec import marshal
from webhook_service.storage.items import config_counts_item
from webhook_service.storage.keys import CONFIG_COUNTS_SK, org_pk
from webhook_service.storage.planning import LIST_BOOKKEEPING_ITEMS, entries_bound, read_bound
from webhook_service.storage.store import Store

URL = "https://receiver.example/hooks"


def at(seconds: int) -> dt.datetime:
    return BASE_TIME + dt.timedelta(seconds=seconds)


class CountingClient:
    """Counts the items every read reads (a Query's `ScannedCount`, filtered-out items too)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.items_read = 0
        self._lock = threading.Lock()  # a merged list page reads its shards on several threads

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            response = attribute(*args, **kwargs)
            with self._lock:
                self._count(name, response)
            return response

        return call

    def _count(self, name: str, response: Any) -> None:
        if name == "query":
            self.items_read += int(response.get("ScannedCount", 0))
        elif name == "get_item":
            self.items_read += 1 if "Item" in response else 0
        elif name == "batch_get_item":
            self.items_read += sum(len(found) for found in response.get("Responses", {}).values())
        elif name == "scan":
            raise AssertionError("a list never scans")


def counting(store: Store) -> tuple[Store, CountingClient]:
    client = CountingClient(store.table.client)
    return Store(store.table.name, as_dynamodb(client)), client


def add_events(store: Store, organisation: str, actions: list[str]) -> list[Event]:
    """One event per action, a second apart, oldest first."""
    events = []
    for n, action in enumerate(actions):
        event = new_event(organisation, "session", action, {"n": n}, None, at(n))
        store.events.create(event)
        events.append(event)
    return events


def add_configs(store: Store, organisation: str, states: list[str]) -> list[Any]:
    configs = []
    for n, state in enumerate(states):
        config = replace(new_config(organisation, URL, at(n)), state=ConfigState(state))
        store.configs.create(config, new_test_task(config, "key-1", at(n)))
        configs.append(config)
    return configs


# -- reads bounded by the page -------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        ListQuery(limit=3),
        ListQuery(limit=3, filters={"state": "pending"}),
        ListQuery(limit=3, filters={"type": "session"}),
        ListQuery(limit=3, filters={"action": "created"}),
        ListQuery(limit=3, date_bounds={"gte": at(5)}),
    ],
    ids=["plain", "state", "type", "action (no index)", "date"],
)
def test_list_items_events_page_reads_at_most_limit_plus_one(store: Store, organisation: str, query: ListQuery) -> None:
    add_events(store, organisation, ["created"] * 30)
    bounded, client = counting(store)

    page = bounded.lists.events(organisation, query)

    assert client.items_read <= read_bound("event", query.limit) - LIST_BOOKKEEPING_ITEMS
    assert page.has_more is True
    assert page.total_count_capped is True


def test_list_items_events_cursor_page_reads_limit_plus_one_and_the_cursor(store: Store, organisation: str) -> None:
    events = add_events(store, organisation, ["created"] * 30)
    bounded, client = counting(store)

    page = bounded.lists.events(organisation, ListQuery(limit=3, after_id=events[20].id))

    assert [i.id for i in page.items] == [events[19].id, events[18].id, events[17].id]
    assert client.items_read <= read_bound("event", 3)
    assert (page.has_more, page.total_count_capped, page.next_after_id) == (True, True, events[17].id)


def test_list_items_both_cursors_naming_one_item_read_it_once_and_list_nothing(store: Store, organisation: str) -> None:
    events = add_events(store, organisation, ["created"] * 3)

    page = store.lists.events(organisation, ListQuery(after_id=events[1].id, before_id=events[1].id))

    assert (page.items, page.has_more) == ([], False)


def test_list_items_capped_total_counts_the_matches_the_page_read(store: Store, organisation: str) -> None:
    add_events(store, organisation, ["created"] * 8)

    page = store.lists.events(organisation, ListQuery(limit=3))

    assert (page.total_count, page.total_count_capped) == (4, True)  # the page's 3 and the one after


def test_list_items_whole_list_in_page_counts_exactly(store: Store, organisation: str) -> None:
    add_events(store, organisation, ["created"] * 4)

    page = store.lists.events(organisation, ListQuery(limit=10))

    assert (page.total_count, page.total_count_capped, page.has_more, page.next_after_id) == (4, False, False, None)


# -- filters no index serves: a window of limit + 1 ------------------------------------------------


def test_list_items_filter_without_index_pages_through_windows_to_every_match(store: Store, organisation: str) -> None:
    """A page of events reads its shards within its budget; a filter no index serves may
    leave it short of the limit (even empty), and the pages chained give every match."""
    budget = entries_bound("event", 2)  # entries one page may read
    actions = ["failed" if n % (budget // 3) == 0 else "created" for n in range(2 * budget)]
    events = add_events(store, organisation, actions)
    expected = [e.id for e in reversed(events) if e.action == "failed"]
    bounded, client = counting(store)

    found: list[str] = []
    after: str | None = None
    short = 0
    for _ in range(80):  # bounded: each page moves on by its budget at least
        client.items_read = 0
        query = ListQuery(limit=2, filters={"action": "failed"}, after_id=after)
        page = bounded.lists.events(organisation, query)
        assert client.items_read <= read_bound("event", 2)
        found += [i.id for i in page.items]
        if not page.has_more:
            break
        short += len(page.items) < 2
        assert page.next_after_id is not None
        after = page.next_after_id

    assert found == expected
    assert short > 0  # some pages ended at their budget, short of the limit


def test_list_items_filter_without_index_window_of_no_match_says_where_to_go_on(
    store: Store, organisation: str
) -> None:
    events = add_events(store, organisation, ["failed"] + ["created"] * (entries_bound("event", 2) + 20))

    page = store.lists.events(organisation, ListQuery(limit=2, filters={"action": "failed"}))

    assert (page.items, page.has_more) == ([], True)
    assert page.next_after_id in {e.id for e in events[1:]}
    found = []
    for _ in range(10):  # bounded: each page moves on by its budget
        query = ListQuery(limit=2, filters={"action": "failed"}, after_id=page.next_after_id)
        page = store.lists.events(organisation, query)
        found += [i.id for i in page.items]
        if not page.has_more:
            break
    assert found == [events[0].id]


# -- configs: counts kept exact ----------------------------------------------------------------------


def test_list_items_configs_with_more_total_from_counts_without_counting_query(store: Store, organisation: str) -> None:
    add_configs(store, organisation, ["new"] * 12)
    bounded, client = counting(store)

    page = bounded.lists.configs(organisation, ListQuery(limit=2))

    assert (page.total_count, page.total_count_capped, page.has_more) == (12, False, True)
    assert client.items_read <= read_bound("webhook_config", 2)


def test_config_counts_follow_every_state_change(store: Store, organisation: str) -> None:
    new, valid, invalid, gone = add_configs(store, organisation, ["new", "valid", "valid", "new"])
    store.configs.invalidate(invalid)
    store.configs.replace(replace(gone, state="deactivated", version=2), expected_version=1, task=None)
    task = new_test_task(new, "key-1", at(10))
    store.configs.create_test_task(new, task)
    started = store.configs.start_task(task, "event-id", at(11))
    assert started is not None
    store.configs.record_test_outcome(
        new,
        ConfigState.VALID,
        replace(started, state=TaskState.SUCCEEDED, date_completed=at(12)),
        replace(new_event(organisation, "webhook_config", "test", {}, None, at(11)), state=EventState.DELIVERED),
    )

    assert store.configs.counts(organisation) == {"new": 0, "valid": 2, "invalid": 1, "deactivated": 1}
    for state, expected in (("valid", 2), ("invalid", 1), ("deactivated", 1), ("new", 0)):
        page = store.lists.configs(organisation, ListQuery(limit=1, filters={"state": state}))
        assert page.total_count == expected
    assert store.lists.configs(organisation, ListQuery(limit=1)).total_count == 3
    assert valid.id  # listed among the valid ones above


def test_record_test_outcome_config_state_moved_since_read_reads_again_and_counts(
    store: Store, organisation: str
) -> None:
    (config,) = add_configs(store, organisation, ["new"])  # read by both tests' jobs while `new`
    first, second = new_test_task(config, "key-1", at(10)), new_test_task(config, "key-1", at(11))
    store.configs.create_test_task(config, first)
    store.configs.create_test_task(replace(config, open_test=first.id), second)
    started = [store.configs.start_task(task, f"event-{n}", at(12)) for n, task in enumerate((first, second))]
    assert started[0] is not None
    assert started[1] is not None
    event = new_event(organisation, "webhook_config", "test", {}, None, at(12))

    ended_first = store.configs.record_test_outcome(
        config, ConfigState.INVALID, replace(started[0], state=TaskState.FAILED), event
    )
    ended_second = store.configs.record_test_outcome(
        config, ConfigState.VALID, replace(started[1], state=TaskState.SUCCEEDED), event
    )

    assert (ended_first, ended_second) == ("applied", "applied")
    stored = store.configs.get(organisation, config.id)
    assert stored is not None
    assert stored.state == "valid"
    assert store.configs.counts(organisation) == {"new": 0, "valid": 1, "invalid": 0, "deactivated": 0}


def test_list_items_organisation_without_kept_counts_counts_with_a_query(store: Store, organisation: str) -> None:
    add_configs(store, organisation, ["new"] * 4)
    key = marshal({"PK": org_pk(organisation), "SK": CONFIG_COUNTS_SK})
    store.table.client.delete_item(TableName=store.table.name, Key=key)
    try:
        page = store.lists.configs(organisation, ListQuery(limit=1))

        assert (page.total_count, page.total_count_capped) == (4, False)
        assert store.configs.counts(organisation) is None
    finally:  # the table is shared: leave the organisation as the store keeps it
        store.table.client.put_item(
            TableName=store.table.name, Item=marshal(config_counts_item(organisation, {"new": 4}))
        )
