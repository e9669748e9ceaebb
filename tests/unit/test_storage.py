"""DynamoDB storage on the template's own table (moto in-process): atomic writes,
conditional versions, keys, and lists read from the indexes, never by Scan."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.support import BASE_TIME, Backing, RecordingClient, as_dynamodb
from webhook_service import admin
from webhook_service.auth import hash_token
from webhook_service.domain.configs import (
    ConfigState,
    Task,
    TaskState,
    WebhookConfig,
    failed_to_queue,
    new_config,
    new_test_task,
)
from webhook_service.domain.queries import ListQuery, Page
from webhook_service.domain.tenants import KeyState, Principal
from webhook_service.errors import ConflictError, DependencyError, UnknownCursorError
from webhook_service.storage.store import Store
from webhook_service.storage.table import BATCH_GET_TRIES

URL = "https://receiver.example/hooks"


def at(seconds: int) -> dt.datetime:
    return BASE_TIME + dt.timedelta(seconds=seconds)


def add_config(store: Store, organisation: str, created: dt.datetime, state: str = "new") -> tuple[WebhookConfig, Task]:
    config = replace(new_config(organisation, URL, created), state=ConfigState(state))
    task = new_test_task(config, "key-1", created)
    store.configs.create(config, task)
    return config, task


def add_configs(store: Store, organisation: str, count: int) -> list[WebhookConfig]:
    """`count` configs one second apart, oldest first."""
    return [add_config(store, organisation, at(n))[0] for n in range(count)]


def cursor_query(cursor: str, cursor_id: str) -> ListQuery:
    """A list query with one cursor, `after_id` or `before_id`."""
    return ListQuery(after_id=cursor_id) if cursor == "after_id" else ListQuery(before_id=cursor_id)


def listed_ids(store: Store, organisation: str, resource: str = "webhook_config", **query: Any) -> list[str]:
    lists: dict[str, Callable[[str, ListQuery], Page[Any]]] = {
        "webhook_config": store.lists.configs,
        "task": store.lists.tasks,
        "event": store.lists.events,
        "attempt": store.lists.attempts,
    }
    page = lists[resource](organisation, ListQuery(**query))
    return [item.id for item in page.items]


# -- configs and tasks ------------------------------------------------------------------------


def test_create_config_new_config_stores_config_and_task(store: Store, organisation: str) -> None:
    config, task = add_config(store, organisation, at(0))

    assert store.configs.get(organisation, config.id) == config
    assert store.configs.get_task(organisation, task.id) == task


def test_create_config_task_id_taken_writes_neither(store: Store, organisation: str) -> None:
    _, taken = add_config(store, organisation, at(0))
    config = new_config(organisation, URL, at(1))

    with pytest.raises(ConflictError):
        store.configs.create(config, replace(taken, target=config.id))

    assert store.configs.get(organisation, config.id) is None
    stored = store.configs.get_task(organisation, taken.id)
    assert stored is not None
    assert stored.target != config.id


def test_create_config_id_taken_raises_conflict_and_keeps_original(store: Store, organisation: str) -> None:
    config, _ = add_config(store, organisation, at(0))
    clash = replace(config, url="https://other.example/")

    with pytest.raises(ConflictError):
        store.configs.create(clash, new_test_task(clash, "key-1", at(1)))

    assert store.configs.get(organisation, config.id) == config


def test_get_config_other_organisation_returns_none(store: Store, organisation: str) -> None:
    config, _ = add_config(store, organisation, at(0))

    assert store.configs.get(str(uuid.uuid4()), config.id) is None


class HeldBackClient(RecordingClient):
    """Answers the first `held` BatchGetItem calls with every key unprocessed, as DynamoDB
    does under throttling."""

    def __init__(self, client: Any, held: int) -> None:
        super().__init__(client)
        self.held = held

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.calls.append("batch_get_item")
        if self.held:
            self.held -= 1
            return {"Responses": {}, "UnprocessedKeys": kwargs["RequestItems"]}
        return self._client.batch_get_item(**kwargs)


def test_get_task_and_config_reads_both_in_one_request(backing: Backing, organisation: str) -> None:
    recording = RecordingClient(backing.dynamodb)
    config, task = add_config(Store(backing.table_name, as_dynamodb(recording)), organisation, at(0))
    recording.calls.clear()

    found = Store(backing.table_name, as_dynamodb(recording)).configs.get_task_and_config(
        organisation, task.id, config.id
    )

    assert found == (task, config)
    assert recording.calls == ["batch_get_item"]


def test_get_task_and_config_retries_unprocessed_keys_with_backoff(
    backing: Backing, organisation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("webhook_service.storage.table.time.sleep", pauses.append)
    config, task = add_config(Store(backing.table_name, backing.dynamodb), organisation, at(0))
    held = HeldBackClient(backing.dynamodb, held=2)

    found = Store(backing.table_name, as_dynamodb(held)).configs.get_task_and_config(organisation, task.id, config.id)

    assert found == (task, config)
    assert held.calls == ["batch_get_item"] * 3
    assert pauses == [0.05, 0.1]


def test_get_task_and_config_keys_never_processed_raises_dependency_error(
    backing: Backing, organisation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("webhook_service.storage.table.time.sleep", pauses.append)
    config, task = add_config(Store(backing.table_name, backing.dynamodb), organisation, at(0))
    held = HeldBackClient(backing.dynamodb, held=BATCH_GET_TRIES)

    with pytest.raises(DependencyError):
        Store(backing.table_name, as_dynamodb(held)).configs.get_task_and_config(organisation, task.id, config.id)

    assert held.calls == ["batch_get_item"] * BATCH_GET_TRIES
    assert pauses == [0.05, 0.1, 0.2, 0.4]


def test_replace_config_current_version_stores_config_and_task(store: Store, organisation: str) -> None:
    config, _ = add_config(store, organisation, at(0))
    updated = replace(config, url="https://new.example/", version=2)
    task = new_test_task(updated, "key-1", at(1))

    store.configs.replace(updated, expected_version=1, task=task)

    assert store.configs.get(organisation, config.id) == updated
    assert store.configs.get_task(organisation, task.id) == task


def test_replace_config_stale_version_raises_conflict_and_leaves_item(store: Store, organisation: str) -> None:
    config, _ = add_config(store, organisation, at(0))
    current = replace(config, url="https://first.example/", version=2)
    store.configs.replace(current, expected_version=1, task=None)
    late = replace(config, url="https://late.example/", version=2)
    late_task = new_test_task(late, "key-1", at(2))

    with pytest.raises(ConflictError):
        store.configs.replace(late, expected_version=1, task=late_task)

    assert store.configs.get(organisation, config.id) == current
    assert store.configs.get_task(organisation, late_task.id) is None


def test_create_test_task_current_version_stores_task(store: Store, organisation: str) -> None:
    config, _ = add_config(store, organisation, at(0))
    task = new_test_task(config, "key-1", at(1))

    store.configs.create_test_task(config, task)

    assert store.configs.get_task(organisation, task.id) == task


def test_create_test_task_stale_version_raises_conflict(store: Store, organisation: str) -> None:
    config, _ = add_config(store, organisation, at(0))
    store.configs.replace(replace(config, version=2), expected_version=1, task=None)
    task = new_test_task(config, "key-1", at(1))

    with pytest.raises(ConflictError):
        store.configs.create_test_task(config, task)

    assert store.configs.get_task(organisation, task.id) is None


def test_create_test_task_deactivated_config_raises_conflict(store: Store, organisation: str) -> None:
    config, _ = add_config(store, organisation, at(0))
    deactivated = replace(config, state=ConfigState.DEACTIVATED, version=2)
    store.configs.replace(deactivated, expected_version=1, task=None)
    task = new_test_task(deactivated, "key-1", at(1))

    with pytest.raises(ConflictError):
        store.configs.create_test_task(deactivated, task)

    assert store.configs.get_task(organisation, task.id) is None


def test_finish_pending_task_pending_task_is_written(store: Store, organisation: str) -> None:
    _, task = add_config(store, organisation, at(0))
    failed = failed_to_queue(task, at(1))

    store.configs.finish_pending_task(failed)

    assert store.configs.get_task(organisation, task.id) == failed


def test_finish_pending_task_already_ended_raises_conflict(store: Store, organisation: str) -> None:
    _, task = add_config(store, organisation, at(0))
    store.configs.finish_pending_task(failed_to_queue(task, at(1)))

    with pytest.raises(ConflictError):
        store.configs.finish_pending_task(replace(task, state=TaskState.SUCCEEDED))


# -- lists: order, pages, counts ----------------------------------------------------------------


def test_list_items_configs_come_newest_first(store: Store, organisation: str) -> None:
    configs = add_configs(store, organisation, 3)

    assert listed_ids(store, organisation) == [c.id for c in reversed(configs)]


def test_list_items_limit_below_matches_reports_more_and_total(store: Store, organisation: str) -> None:
    configs = add_configs(store, organisation, 3)

    page = store.lists.configs(organisation, ListQuery(limit=2))

    assert [i.id for i in page.items] == [configs[2].id, configs[1].id]
    assert (page.has_more, page.total_count) == (True, 3)


def test_list_items_limit_equal_to_matches_reports_no_more(store: Store, organisation: str) -> None:
    add_configs(store, organisation, 3)

    page = store.lists.configs(organisation, ListQuery(limit=3))

    assert (len(page.items), page.has_more, page.total_count) == (3, False, 3)


def test_list_items_empty_organisation_gives_empty_page(store: Store, organisation: str) -> None:
    page = store.lists.configs(organisation, ListQuery())

    assert (page.items, page.has_more, page.total_count) == ([], False, 0)


def test_list_items_after_id_returns_older_than_cursor(store: Store, organisation: str) -> None:
    configs = add_configs(store, organisation, 4)

    assert listed_ids(store, organisation, after_id=configs[2].id) == [configs[1].id, configs[0].id]


def test_list_items_after_id_with_limit_pages_onward(store: Store, organisation: str) -> None:
    configs = add_configs(store, organisation, 4)

    page = store.lists.configs(organisation, ListQuery(limit=1, after_id=configs[3].id))

    assert [i.id for i in page.items] == [configs[2].id]
    assert page.has_more is True


def test_list_items_before_id_returns_newer_than_cursor(store: Store, organisation: str) -> None:
    configs = add_configs(store, organisation, 4)

    assert listed_ids(store, organisation, before_id=configs[1].id) == [configs[3].id, configs[2].id]


def test_list_items_after_and_before_id_returns_between(store: Store, organisation: str) -> None:
    configs = add_configs(store, organisation, 5)

    ids = listed_ids(store, organisation, after_id=configs[4].id, before_id=configs[1].id)

    assert ids == [configs[3].id, configs[2].id]


def test_list_items_cursor_total_count_ignores_cursors(store: Store, organisation: str) -> None:
    configs = add_configs(store, organisation, 4)

    page = store.lists.configs(organisation, ListQuery(after_id=configs[1].id))

    assert (len(page.items), page.total_count) == (1, 4)


def test_list_items_same_instant_cursor_splits_ties_by_id(store: Store, organisation: str) -> None:
    configs = sorted((add_config(store, organisation, at(0))[0] for _ in range(3)), key=lambda c: c.id)

    assert listed_ids(store, organisation, after_id=configs[2].id) == [configs[1].id, configs[0].id]


@pytest.mark.parametrize("cursor", ["after_id", "before_id"])
def test_list_items_unknown_cursor_raises_naming_it(store: Store, organisation: str, cursor: str) -> None:
    add_configs(store, organisation, 1)

    with pytest.raises(UnknownCursorError) as caught:
        store.lists.configs(organisation, cursor_query(cursor, str(uuid.uuid4())))

    assert caught.value.name == cursor


def test_list_items_cursor_of_other_organisation_is_unknown(store: Store, organisation: str) -> None:
    theirs = add_configs(store, admin.create_organisation(store.organisations, "Other")["id"], 1)[0]

    with pytest.raises(UnknownCursorError):
        store.lists.configs(organisation, ListQuery(after_id=theirs.id))


def test_list_items_task_cursor_on_config_list_is_unknown(store: Store, organisation: str) -> None:
    _, task = add_config(store, organisation, at(0))

    with pytest.raises(UnknownCursorError):
        store.lists.configs(organisation, ListQuery(after_id=task.id))


# -- lists: date bounds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "expected"),
    [("gte", [2, 1]), ("gt", [2]), ("lte", [1, 0]), ("lt", [0])],
)
def test_list_items_date_bound_at_exact_creation_instant_follows_operator(
    store: Store, organisation: str, operator: str, expected: list[int]
) -> None:
    configs = add_configs(store, organisation, 3)

    ids = listed_ids(store, organisation, date_bounds={operator: configs[1].date_created})

    assert ids == [configs[n].id for n in expected]


def test_list_items_date_range_whole_in_page_counts_exactly(store: Store, organisation: str) -> None:
    configs = add_configs(store, organisation, 5)

    page = store.lists.configs(
        organisation,
        ListQuery(limit=3, date_bounds={"gt": configs[0].date_created, "lt": configs[4].date_created}),
    )

    assert [i.id for i in page.items] == [configs[3].id, configs[2].id, configs[1].id]
    assert (page.has_more, page.total_count, page.total_count_capped) == (False, 3, False)


def test_list_items_date_range_with_more_counts_what_it_read_capped(store: Store, organisation: str) -> None:
    configs = add_configs(store, organisation, 5)

    page = store.lists.configs(
        organisation,
        ListQuery(limit=1, date_bounds={"gt": configs[0].date_created, "lt": configs[4].date_created}),
    )

    assert [i.id for i in page.items] == [configs[3].id]
    assert (page.has_more, page.total_count, page.total_count_capped) == (True, 2, True)


def test_list_items_empty_date_range_returns_nothing(store: Store, organisation: str) -> None:
    add_configs(store, organisation, 3)

    page = store.lists.configs(organisation, ListQuery(date_bounds={"gt": at(2), "lt": at(0)}))

    assert (page.items, page.total_count) == ([], 0)


def test_list_items_date_bound_before_year_1000_includes_everything(store: Store, organisation: str) -> None:
    configs = add_configs(store, organisation, 2)

    ids = listed_ids(store, organisation, date_bounds={"gte": dt.datetime(999, 1, 1, tzinfo=dt.UTC)})

    assert ids == [configs[1].id, configs[0].id]


def test_list_items_date_bound_and_cursor_combine(store: Store, organisation: str) -> None:
    configs = add_configs(store, organisation, 4)

    ids = listed_ids(store, organisation, after_id=configs[3].id, date_bounds={"gte": configs[1].date_created})

    assert ids == [configs[2].id, configs[1].id]


# -- lists: states, targets, tenancy ---------------------------------------------------------------


def test_list_items_plain_list_leaves_out_deactivated_configs(store: Store, organisation: str) -> None:
    kept, _ = add_config(store, organisation, at(0))
    gone, _ = add_config(store, organisation, at(1))
    store.configs.replace(replace(gone, state=ConfigState.DEACTIVATED, version=2), expected_version=1, task=None)

    page = store.lists.configs(organisation, ListQuery())

    assert ([i.id for i in page.items], page.total_count) == ([kept.id], 1)


def test_list_items_state_deactivated_lists_deactivated_configs(store: Store, organisation: str) -> None:
    add_config(store, organisation, at(0))
    gone, _ = add_config(store, organisation, at(1))
    store.configs.replace(replace(gone, state=ConfigState.DEACTIVATED, version=2), expected_version=1, task=None)

    assert listed_ids(store, organisation, filters={"state": "deactivated"}) == [gone.id]


def test_list_items_reactivated_config_returns_to_plain_list(store: Store, organisation: str) -> None:
    config, _ = add_config(store, organisation, at(0), state="deactivated")
    store.configs.replace(replace(config, state=ConfigState.NEW, version=2), expected_version=1, task=None)

    assert listed_ids(store, organisation) == [config.id]


def test_list_items_state_filter_returns_only_that_state(store: Store, organisation: str) -> None:
    valid, _ = add_config(store, organisation, at(0), state="valid")
    add_config(store, organisation, at(1), state="new")
    add_config(store, organisation, at(2), state="invalid")

    page = store.lists.configs(organisation, ListQuery(filters={"state": "valid"}))

    assert ([i.id for i in page.items], page.total_count) == ([valid.id], 1)


def test_list_items_task_target_filter_returns_only_that_configs_tasks(store: Store, organisation: str) -> None:
    config, first = add_config(store, organisation, at(0))
    add_config(store, organisation, at(1))
    second = new_test_task(config, "key-1", at(2))
    store.configs.create_test_task(config, second)

    assert listed_ids(store, organisation, "task", filters={"target": config.id}) == [second.id, first.id]


def test_list_items_task_target_and_state_filters_both_apply(store: Store, organisation: str) -> None:
    config, first = add_config(store, organisation, at(0))
    store.configs.finish_pending_task(failed_to_queue(first, at(1)))
    pending = new_test_task(config, "key-1", at(2))
    store.configs.create_test_task(config, pending)
    add_config(store, organisation, at(3))

    page = store.lists.tasks(organisation, ListQuery(filters={"target": config.id, "state": "failed"}))

    assert ([i.id for i in page.items], page.total_count) == ([first.id], 1)


def test_list_items_task_state_filter_follows_state_change(store: Store, organisation: str) -> None:
    _, task = add_config(store, organisation, at(0))
    store.configs.finish_pending_task(failed_to_queue(task, at(1)))

    assert listed_ids(store, organisation, "task", filters={"state": "pending"}) == []


def test_list_items_other_organisations_items_never_appear(store: Store, organisation: str) -> None:
    other = admin.create_organisation(store.organisations, "Other")["id"]
    add_configs(store, other, 2)
    add_config(store, other, at(5), state="deactivated")
    mine = add_configs(store, organisation, 1)

    assert listed_ids(store, organisation) == [mine[0].id]
    assert listed_ids(store, organisation, filters={"state": "deactivated"}) == []
    assert len(listed_ids(store, organisation, "task")) == 1


def test_list_items_any_query_never_scans(backing: Backing, organisation: str) -> None:
    recording = RecordingClient(backing.dynamodb)
    store = Store(backing.table_name, as_dynamodb(recording))
    configs = add_configs(store, organisation, 3)
    queries = [
        ListQuery(),
        ListQuery(limit=1),
        ListQuery(filters={"state": "new"}),
        ListQuery(after_id=configs[2].id, before_id=configs[0].id),
        ListQuery(date_bounds={"gte": at(1)}),
    ]

    for query in queries:
        store.lists.configs(organisation, query)
    store.lists.tasks(organisation, ListQuery(filters={"target": configs[0].id}))

    assert "query" in recording.calls
    assert "scan" not in recording.calls


# -- organisations and keys --------------------------------------------------------------------


def test_create_key_known_organisation_is_found_by_token_hash(store: Store, organisation: str) -> None:
    key, token = admin.create_key(store.organisations, organisation)

    assert store.organisations.find_principal(hash_token(token)) == Principal(key["id"], organisation, KeyState.ACTIVE)


def test_create_key_unknown_organisation_raises_conflict_and_stores_nothing(store: Store) -> None:
    token = "rwk_" + uuid.uuid4().hex

    with pytest.raises(ConflictError):
        admin.create_key(store.organisations, str(uuid.uuid4()), token=token)

    assert store.organisations.find_principal(hash_token(token)) is None


def test_create_key_any_key_resource_shows_neither_token_nor_hash(store: Store, organisation: str) -> None:
    key, token = admin.create_key(store.organisations, organisation)

    assert set(key) == {"id", "resource", "organisation", "webhook_config", "state", "date_created"}
    assert token not in key.values()
    assert hash_token(token) not in key.values()


def test_create_key_same_token_twice_raises_conflict(store: Store, organisation: str) -> None:
    _, token = admin.create_key(store.organisations, organisation)

    with pytest.raises(ConflictError):
        admin.create_key(store.organisations, organisation, token=token)


def test_find_principal_unknown_hash_returns_none(store: Store) -> None:
    assert store.organisations.find_principal(hash_token("rwk_never-issued")) is None


def test_deactivate_key_known_key_deactivates_key_and_token(store: Store, organisation: str) -> None:
    key, token = admin.create_key(store.organisations, organisation)

    result = admin.deactivate_key(store.organisations, organisation, key["id"])

    assert result is not None
    assert result["state"] == "deactivated"
    principal = store.organisations.find_principal(hash_token(token))
    assert principal is not None
    assert principal.state == "deactivated"
    stored = store.organisations.get_key(organisation, key["id"])
    assert stored is not None
    assert stored.state == "deactivated"


def test_deactivate_key_unknown_key_returns_none(store: Store, organisation: str) -> None:
    assert admin.deactivate_key(store.organisations, organisation, str(uuid.uuid4())) is None


def test_deactivate_key_other_organisation_returns_none_and_keeps_key_active(store: Store, organisation: str) -> None:
    key, token = admin.create_key(store.organisations, organisation)

    assert admin.deactivate_key(store.organisations, str(uuid.uuid4()), key["id"]) is None
    principal = store.organisations.find_principal(hash_token(token))
    assert principal is not None
    assert principal.state == "active"


def test_find_key_by_token_issued_token_returns_its_key(store: Store, organisation: str) -> None:
    key, token = admin.create_key(store.organisations, organisation)

    assert admin.find_key_by_token(store.organisations, token) == key


def test_create_organisation_blank_name_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="1 to 200"):
        admin.create_organisation(store.organisations, "   ")
