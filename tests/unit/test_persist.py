"""What the local stack keeps across restarts (devstack.persist): the table's items saved
and loaded back into a new table of the template, expired items left out, open tasks and
events queued again, the folder locked, and the development key kept."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import pytest

from devstack import aws, persist, template
from tests.unit.support import Backing
from webhook_service import admin
from webhook_service.auth import hash_token
from webhook_service.domain.configs import new_config, new_test_task
from webhook_service.domain.events import Event, EventState
from webhook_service.domain.queries import ListQuery
from webhook_service.domain.retries import MAX_ATTEMPTS
from webhook_service.storage.keys import CONFIG_COUNTS_SK
from webhook_service.storage.migration import Migration
from webhook_service.storage.store import Store

NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
TEMPLATE = template.load_template()


def _ttl_attribute() -> str:
    found = persist.ttl_attribute(TEMPLATE)
    assert found is not None, "the template's table names its TTL attribute"
    return found


TTL = _ttl_attribute()


class RecordingQueue:
    """Records each job with the delay it was sent with."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, job: dict[str, Any], delay_seconds: int = 0) -> str:
        self.sent.append((job, delay_seconds))
        return str(uuid.uuid4())


@pytest.fixture
def new_store(backing: Backing) -> Store:
    """An empty table of the template, in a stack of its own (a restarted local stack's)."""
    stack = aws.deploy(TEMPLATE, {"Stage": "dev"}, stack_name=f"persist-{uuid.uuid4().hex[:8]}")
    return Store(stack.refs["Table"], backing.dynamodb)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[persist.LocalState]:
    opened = persist.LocalState.open(tmp_path / "state")
    yield opened
    opened.close()


def scan(store: Store) -> list[dict[str, Any]]:
    return sorted(persist.scan_items(store.table.client, store.table.name), key=lambda i: (i["PK"]["S"], i["SK"]["S"]))


def make_history(store: Store, now: dt.datetime) -> dict[str, str]:
    """An organisation with a key, a config, its open test task and an open event."""
    organisation = admin.create_organisation(store.organisations, "Kept", now=now)["id"]
    key, token = admin.create_key(store.organisations, organisation)
    config = new_config(organisation, "https://receiver.example/hooks", now)
    task = new_test_task(config, key["id"], now)
    store.configs.create(config, task)
    store.organisations.set_default(organisation, config.id)
    event = Event(
        id=str(uuid.uuid4()), organisation=organisation, type="session", action="completed", data={},
        state=EventState.PENDING, date_created=now,
    )  # fmt: skip
    store.events.create(event)
    return {"organisation": organisation, "token": token, "config": config.id, "task": task.id, "event": event.id}


def test_restore_saved_table_into_a_new_table_brings_every_item_back(
    store: Store, new_store: Store, state: persist.LocalState
) -> None:
    old = store  # the package's table plays the stopped stack's
    made = make_history(old, dt.datetime.now(dt.UTC))
    saved = state.save_table(old.table.client, old.table_name, TTL)
    restored = state.restore(
        new_store.table.client, new_store.table_name, RecordingQueue(), TTL, dt.datetime.now(dt.UTC)
    )

    assert restored is not None
    assert restored.items == saved
    # The package's table is shared with other tests, some of which leave items long expired
    # (dated 2019): a restore drops those, as it must.
    unexpired = [i for i in scan(old) if int(i.get(TTL, {}).get("N", "0") or 0) == 0 or int(i[TTL]["N"]) > time.time()]
    assert scan(new_store) == unexpired
    kept_org = new_store.organisations.get(made["organisation"])
    assert kept_org is not None
    assert kept_org.webhook_config_default == made["config"]
    assert new_store.organisations.find_principal(hash_token(made["token"])) is not None  # the key still signs in


def test_restore_organisation_saved_before_config_counts_gets_them_counted(
    store: Store, new_store: Store, state: persist.LocalState
) -> None:
    made = make_history(store, dt.datetime.now(dt.UTC))
    saved = [
        i
        for i in persist.scan_items(store.table.client, store.table.name)
        if made["organisation"] in i["PK"]["S"] and i["SK"]["S"] != CONFIG_COUNTS_SK
    ]
    persist.write_snapshot(state.snapshot_path, saved, dt.datetime.now(dt.UTC))

    state.restore(new_store.table.client, new_store.table_name, RecordingQueue(), TTL, dt.datetime.now(dt.UTC))

    assert new_store.configs.counts(made["organisation"]) == {"new": 1, "valid": 0, "invalid": 0, "deactivated": 0}


# A local table saved by the code of 2026-11-28 (commit 903b037: an event whole in one item,
# its attempts in items of their own), made by running that version's `make dev` against a
# receiver: three events delivered, one retrying (its fourth attempt failed), one whose
# first attempt was still being made at the stop (claimed), the configs' test events, and
# fourteen attempts.
SAVED_2026_11 = Path(__file__).resolve().parents[1] / "fixtures" / "table-saved-2026-11.json"
SAVED_AT = dt.datetime(2026, 12, 6, 23, 6, tzinfo=dt.UTC)


def saved_organisation() -> str:
    for item in persist.read_snapshot(SAVED_2026_11):
        if item.get("resource", {}).get("S") == "organisation":
            return str(item["id"]["S"])
    raise AssertionError("the saved table has an organisation")


def check_saved_events(store: Store, organisation: str) -> None:
    """What the saved table held, as the API reads it in this layout."""
    events = store.lists.events(organisation, ListQuery(limit=100)).items
    sessions = {e.action: e for e in events if e.type == "session"}
    assert len([e for e in events if e.is_test]) == 6
    retrying, hung = sessions["failed"], sessions["hung"]
    assert (retrying.state, retrying.attempts, retrying.error) == ("pending", 4, "webhook-response-status")
    assert (hung.state, hung.attempts, hung.claimed_until) == ("pending", 1, 1796598357)
    delivered = [e for e in events if e.type == "session" and e.state == EventState.DELIVERED]
    assert len(delivered) == 3
    assert all(e.data.get("price") == 1.50 for e in delivered)  # the data as published
    assert [e.id for e in store.lists.events(organisation, ListQuery(filters={"state": "pending"})).items] == [
        hung.id,
        retrying.id,
    ]
    attempts = store.lists.attempts(organisation, ListQuery(filters={"event": retrying.id}, limit=10)).items
    assert [a.status_code for a in attempts] == [503, 503, 503, 503]
    assert attempts == sorted(attempts, key=lambda a: a.date_created, reverse=True)
    page = store.lists.attempts(
        organisation, ListQuery(filters={"event": retrying.id}, limit=1, after_id=attempts[1].id)
    )
    assert [a.id for a in page.items] == [attempts[2].id]  # an attempt recorded before time-ordered ids is a cursor


def test_restore_a_table_saved_in_the_previous_layout_converts_its_events_and_attempts(
    new_store: Store, state: persist.LocalState
) -> None:
    state.snapshot_path.write_bytes(SAVED_2026_11.read_bytes())
    queue = RecordingQueue()

    restored = state.restore(new_store.table.client, new_store.table_name, queue, TTL, SAVED_AT)

    assert restored is not None
    organisation = saved_organisation()
    check_saved_events(new_store, organisation)
    assert not any(i["SK"]["S"] == "EVENT" or i["PK"]["S"].startswith("ATTEMPT#") for i in scan(new_store))
    # The jobs of what had not ended: the claimed attempt again (taken over once its claim
    # runs out), the retrying event's fifth attempt, when it is due.
    jobs = sorted((job["attempt"], job.get("not_before")) for job, _ in queue.sent if job["job"] == "event")
    assert jobs == [(1, None), (5, 1796598330)]


def test_migration_converts_a_table_in_the_previous_layout_in_place_and_again_changes_nothing(
    new_store: Store,
) -> None:
    persist.put_items(new_store.table.client, new_store.table_name, persist.read_snapshot(SAVED_2026_11))

    first = Migration(new_store.table).run()
    second = Migration(new_store.table).run()

    assert (first.converted, first.written) == (11 + 14, 2 * 11 + 14)
    assert (second.converted, second.written) == (0, 0)
    check_saved_events(new_store, saved_organisation())


def test_restore_items_whose_time_to_live_passed_are_left_out(new_store: Store, state: persist.LocalState) -> None:
    items = [
        {"PK": {"S": "A"}, "SK": {"S": "gone"}, "expires_at": {"N": str(int(NOW.timestamp()) - 1)}},
        {"PK": {"S": "A"}, "SK": {"S": "kept"}, "expires_at": {"N": str(int(NOW.timestamp()) + 60)}},
        {"PK": {"S": "A"}, "SK": {"S": "forever"}},
    ]
    persist.write_snapshot(state.snapshot_path, items, NOW)

    restored = state.restore(new_store.table.client, new_store.table_name, RecordingQueue(), TTL, NOW)

    assert restored == persist.Restored(items=2, expired=1, requeued=0)
    assert [i["SK"]["S"] for i in scan(new_store)] == ["forever", "kept"]


def test_ttl_attribute_is_read_from_the_template() -> None:
    assert TTL == "expires_at"


def test_restore_into_a_table_that_holds_items_leaves_both_alone(new_store: Store, state: persist.LocalState) -> None:
    new_store.table.client.put_item(TableName=new_store.table_name, Item={"PK": {"S": "B"}, "SK": {"S": "own"}})
    persist.write_snapshot(state.snapshot_path, [{"PK": {"S": "A"}, "SK": {"S": "saved"}}], NOW)
    before = state.snapshot_path.read_bytes()

    assert state.restore(new_store.table.client, new_store.table_name, RecordingQueue(), TTL, NOW) is None
    assert [i["SK"]["S"] for i in scan(new_store)] == ["own"]
    assert state.snapshot_path.read_bytes() == before


def test_restore_nothing_saved_answers_none(new_store: Store, state: persist.LocalState) -> None:
    assert state.restore(new_store.table.client, new_store.table_name, RecordingQueue(), TTL, NOW) is None


@pytest.mark.parametrize("content", ["{not json", '{"format": 99, "items": []}', '{"format": 1, "items": [1]}'])
def test_restore_unreadable_snapshot_raises_state_error_and_keeps_the_file(
    new_store: Store, state: persist.LocalState, content: str
) -> None:
    state.snapshot_path.write_text(content)

    with pytest.raises(persist.StateError):
        state.restore(new_store.table.client, new_store.table_name, RecordingQueue(), TTL, NOW)
    assert state.snapshot_path.read_text() == content


def test_restore_open_task_and_event_are_queued_again_ended_ones_are_not(
    store: Store, new_store: Store, state: persist.LocalState
) -> None:
    now = dt.datetime.now(dt.UTC)
    made = make_history(store, now)
    organisation = made["organisation"]
    later = int(now.timestamp()) + 3600
    waiting = Event(
        id=str(uuid.uuid4()), organisation=organisation, type="session", action="failed", data={},
        state=EventState.PENDING, date_created=now, attempts=2, next_attempt_at=later,
    )  # fmt: skip
    spent = replace(waiting, id=str(uuid.uuid4()), attempts=MAX_ATTEMPTS, next_attempt_at=None)
    delivered = replace(
        waiting, id=str(uuid.uuid4()), state=EventState.DELIVERED, next_attempt_at=None, date_delivered=now
    )
    for event in (waiting, spent, delivered):
        store.events.create(event)
    items = [i for i in scan(store) if organisation in i["PK"]["S"]]  # its partition, its events and attempts
    persist.write_snapshot(state.snapshot_path, items, now)
    queue = RecordingQueue()

    restored = state.restore(new_store.table.client, new_store.table_name, queue, TTL, now)

    assert restored is not None
    assert restored.requeued == 3
    by_id = {job.get("task") or job.get("event"): (job, delay) for job, delay in queue.sent}
    assert by_id[made["task"]] == (
        {"job": "test", "task": made["task"], "organisation": organisation, "config": made["config"]},
        0,
    )
    assert by_id[made["event"]] == (
        {"job": "event", "event": made["event"], "organisation": organisation, "attempt": 1, "key": None},
        0,
    )
    job, delay = by_id[waiting.id]
    assert job["attempt"] == 3
    assert job["not_before"] == later  # the retry keeps its schedule: hops of at most 15 minutes
    assert 3590 <= delay <= 3600
    assert spent.id not in by_id  # no attempt left: the sweep ends it
    assert delivered.id not in by_id


def test_save_table_replaces_the_file_whole_and_leaves_no_temporary_file(
    store: Store, state: persist.LocalState
) -> None:
    state.save_table(store.table.client, store.table.name, TTL)
    first = json.loads(state.snapshot_path.read_text())

    def broken(handle: Any) -> None:
        handle.write('{"format": 1, "items": [')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        persist.write_atomically(state.snapshot_path, broken)

    assert json.loads(state.snapshot_path.read_text()) == first
    assert sorted(p.name for p in state.folder.iterdir()) == ["lock", "table.json"]
    assert state.snapshot_path.stat().st_mode & 0o077 == 0  # the owner's only


def test_open_folder_in_use_raises_state_error_naming_the_holder(tmp_path: Path) -> None:
    first = persist.LocalState.open(tmp_path / "state")
    try:
        with pytest.raises(persist.StateError, match="another local stack"):
            persist.LocalState.open(tmp_path / "state")
    finally:
        first.close()
    persist.LocalState.open(tmp_path / "state").close()  # free once the first let go


def test_open_reset_forgets_the_table_and_the_development_key(tmp_path: Path) -> None:
    first = persist.LocalState.open(tmp_path / "state")
    persist.write_snapshot(first.snapshot_path, [], NOW)
    first.write_identity({"token": "rwk_x"})
    first.close()

    again = persist.LocalState.open(tmp_path / "state", reset=True)
    try:
        assert not again.snapshot_path.exists()
        assert again.read_identity() is None
    finally:
        again.close()


def test_close_saves_once_more_after_the_stack_stopped(tmp_path: Path) -> None:
    state = persist.LocalState.open(tmp_path / "state")
    saves: list[int] = []

    def save() -> int:
        saves.append(1)
        return 1

    state.start_saving(save, changes=lambda: 0, period=3600)

    assert state.close() == 1
    assert saves == [1]


def test_save_loop_saves_only_when_the_write_counter_moved() -> None:
    writes = [0]
    saves: list[int] = []

    def save() -> int:
        saves.append(writes[0])
        return 0

    loop = persist.SaveLoop(save, changes=lambda: writes[0])

    assert loop.tick() is True  # the first tick always saves
    assert loop.tick() is False
    writes[0] = 3
    assert loop.tick() is True
    assert loop.tick() is False
    assert saves == [0, 3]


def test_save_loop_without_a_counter_saves_every_tick() -> None:
    saves: list[int] = []

    def save() -> int:
        saves.append(1)
        return 0

    loop = persist.SaveLoop(save, changes=None)

    assert [loop.tick(), loop.tick()] == [True, True]


def test_save_loop_failed_save_is_tried_again_at_the_next_tick() -> None:
    calls: list[int] = []

    def save() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk full")
        return 0

    loop = persist.SaveLoop(save, changes=lambda: 5)

    assert loop.tick() is False
    assert loop.tick() is True
    assert loop.tick() is False


def test_seed_saved_token_found_reuses_its_key(store: Store) -> None:
    organisation, key_id, token = persist.seed(store, None, None)

    assert persist.seed(store, None, {"organisation": organisation, "token": token}) == (organisation, key_id, token)


def test_seed_new_dev_token_gets_a_key_in_the_saved_organisation(store: Store) -> None:
    organisation, key_id, token = persist.seed(store, None, None)
    chosen = "rwk_" + uuid.uuid4().hex

    again = persist.seed(store, chosen, {"organisation": organisation, "token": token})

    assert again[0] == organisation
    assert again[1] != key_id
    assert again[2] == chosen


def test_seed_saved_token_missing_from_the_table_is_made_again(store: Store) -> None:
    lost = "rwk_" + uuid.uuid4().hex

    organisation, _, token = persist.seed(store, None, {"organisation": str(uuid.uuid4()), "token": lost})

    assert token == lost
    assert store.organisations.get(organisation) is not None
    assert admin.find_key_by_token(store.organisations, lost) is not None


def test_write_atomically_never_shows_a_reader_a_partial_file(tmp_path: Path) -> None:
    """The local stack's info file is written so: a test harness polls for it and reads it
    the moment it appears (a plain write let one read an empty file)."""
    path = tmp_path / "info.json"
    body = {"token": "x" * 200_000}
    seen: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():  # bounded by the writes below
            with contextlib.suppress(FileNotFoundError):
                seen.append(path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(20):

            def write(handle: IO[str], n: int = n) -> None:
                json.dump({**body, "n": n}, handle)

            persist.write_atomically(path, write)
    finally:
        stop.set()
        reader.join(timeout=10)
    assert seen
    assert all(json.loads(text)["token"] == body["token"] for text in seen)
