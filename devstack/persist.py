"""What `make dev` keeps across restarts, in a git-ignored folder (`.devstack/`).

moto keeps nothing of its own, so the local stack saves the table's items itself:

- `table.json`: every item of the table, as DynamoDB JSON, written whole to a temporary
  file and renamed over the last one (a stop mid-write leaves the previous save). It is
  written at every stop (Ctrl-C, SIGTERM, SIGHUP) and every `DEVSTACK_SAVE_SECONDS`
  (default 10) while something changed, so a SIGKILL or a crash loses at most the writes
  of the last period. Loaded into the new table at start, before the API opens, minus the
  items whose `expires_at` has passed (moto never expires items).
- `dev.json`: the development organisation, key and token, and where the stack answers.
  Only the token's hash is in the table, so the token itself is kept here (the folder is
  local, git-ignored, readable by its owner only) to be the same after a restart without
  DEV_TOKEN. `make listen` (devstack.listen) and the operator command line read it.
- `listen.json`: the config the newest `make listen` listens for (`make env` names it ID).
- `lock`: held while a stack uses the folder, so that two stacks never save over each other.

The queue is not saved: at start, every task and event that had not ended gets its job
again (a test, or an event's next attempt, not before it is due), which also recovers what
was in flight at the stop. A job that was still in the queue is then queued twice; each
run is claimed by a conditional write first, so a receiver never gets it twice.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("devstack.persist")

FORMAT = 1
DEFAULT_FOLDER = ".devstack"  # make dev's (the Makefile's DEVSTACK_DATA)
SNAPSHOT = "table.json"
IDENTITY = "dev.json"
LISTENING = "listen.json"  # the config the newest `make listen` listens for (devstack.listen, devstack.env)
LOCK = "lock"
SAVE_SECONDS = 10.0
BATCH_WRITE_SIZE = 25  # BatchWriteItem's limit
BATCH_WRITE_TRIES = 8

RawItem = dict[str, Any]  # an item in DynamoDB JSON ({"PK": {"S": "..."}, ...})


class StateError(Exception):
    """The folder is in use by another stack, or what it holds cannot be read."""


@dataclass(frozen=True)
class Restored:
    items: int  # loaded into the table
    expired: int  # left out: their expires_at had passed
    requeued: int  # jobs queued again for tasks and events that had not ended


def ttl_attribute(template: dict[str, Any], table_logical_id: str = "Table") -> str | None:
    """The table's time-to-live attribute, as the template declares it."""
    spec = template["Resources"][table_logical_id]["Properties"].get("TimeToLiveSpecification") or {}
    return str(spec["AttributeName"]) if spec.get("Enabled") else None


def scan_items(client: Any, table: str) -> list[RawItem]:
    """Every item of the table (consistent reads; a table over 1 MB takes several pages,
    so a save made while the stack runs may straddle a write)."""
    items: list[RawItem] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def table_is_empty(client: Any, table: str) -> bool:
    return not client.scan(TableName=table, Limit=1, ConsistentRead=True).get("Items")


def live(items: list[RawItem], ttl: str | None, now: dt.datetime) -> list[RawItem]:
    """The items whose time to live has not passed (DynamoDB would have deleted the others)."""
    if ttl is None:
        return items
    cutoff = now.timestamp()
    return [i for i in items if "N" not in i.get(ttl, {}) or float(i[ttl]["N"]) > cutoff]


def in_current_layout(items: list[RawItem]) -> list[RawItem]:
    """`items` with the events and attempts saved in an earlier layout converted to the
    table's (webhook_service.storage.migration, which `migrate-layout` runs on a deployed
    table). Everything else is kept as it was."""
    from webhook_service.storage.codec import marshal, unmarshal
    from webhook_service.storage.migration import convert, is_old

    converted: list[RawItem] = []
    for raw in items:
        item = unmarshal(raw)
        converted.extend([marshal(new) for new in convert(item)] if is_old(item) else [raw])
    return converted


def with_config_counts(items: list[RawItem]) -> list[RawItem]:
    """`items` with the config counts of every organisation saved before counts were kept
    (docs/design.md §15.1), counted from its configs: nothing else writes while restoring."""
    from webhook_service.storage.codec import marshal
    from webhook_service.storage.items import config_counts_item
    from webhook_service.storage.keys import CONFIG_COUNTS_SK

    counted = {i["PK"]["S"] for i in items if i.get("SK", {}).get("S") == CONFIG_COUNTS_SK}
    by_organisation: dict[str, dict[str, int]] = {}
    for item in items:
        if item.get("SK", {}).get("S") == "ORG" and item["PK"]["S"] not in counted:
            by_organisation.setdefault(item["id"]["S"], {})
    for item in items:
        organisation = item.get("organisation", {}).get("S")
        if item.get("resource", {}).get("S") == "webhook_config" and organisation in by_organisation:
            state = item["state"]["S"]
            by_organisation[organisation][state] = by_organisation[organisation].get(state, 0) + 1
    return items + [marshal(config_counts_item(org, counts)) for org, counts in by_organisation.items()]


def put_items(client: Any, table: str, items: list[RawItem]) -> None:
    """Write items with BatchWriteItem, 25 at a time, retrying what DynamoDB left unprocessed."""
    for start in range(0, len(items), BATCH_WRITE_SIZE):
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": i}} for i in items[start : start + BATCH_WRITE_SIZE]]
        for attempt in range(BATCH_WRITE_TRIES):
            left = client.batch_write_item(RequestItems={table: requests}).get("UnprocessedItems", {})
            requests = left.get(table, [])
            if not requests:
                break
            time.sleep(0.05 * 2**attempt)
        else:
            raise StateError(f"{len(requests)} items could not be written back to {table}")


def write_atomically(path: Path, write: Callable[[IO[str]], None], mode: int = 0o600) -> None:
    """Write a file whole or not at all: a temporary file, synced, renamed over `path`."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, before the rename
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    )
    try:
        with handle:
            os.chmod(handle.name, mode)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _value_as_text(value: dict[str, Any]) -> dict[str, Any]:
    """An attribute value with its binary values as base64 text (as DynamoDB's own JSON
    export writes them)."""
    if isinstance(value.get("B"), bytes):
        return {"B": base64.b64encode(value["B"]).decode("ascii")}
    if "M" in value:
        return {"M": {k: _value_as_text(v) for k, v in value["M"].items()}}
    if "L" in value:
        return {"L": [_value_as_text(v) for v in value["L"]]}
    return value


def _value_from_text(value: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value.get("B"), str):
        return {"B": base64.b64decode(value["B"])}
    if "M" in value:
        return {"M": {k: _value_from_text(v) for k, v in value["M"].items()}}
    if "L" in value:
        return {"L": [_value_from_text(v) for v in value["L"]]}
    return value


def _as_text(item: RawItem) -> RawItem:
    return {name: _value_as_text(value) for name, value in item.items()}


def _from_text(item: RawItem) -> RawItem:
    return {name: _value_from_text(value) for name, value in item.items()}


def write_snapshot(path: Path, items: list[RawItem], now: dt.datetime) -> None:
    """One item per line, so that the file reads (and diffs) item by item."""

    def write(handle: IO[str]) -> None:
        header = {"format": FORMAT, "saved": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "count": len(items)}
        handle.write(json.dumps(header)[:-1] + ', "items": [\n')
        for n, item in enumerate(items):
            handle.write(json.dumps(_as_text(item), sort_keys=True) + (",\n" if n < len(items) - 1 else "\n"))
        handle.write("]}\n")

    write_atomically(path, write)


def read_snapshot(path: Path) -> list[RawItem]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StateError(f"{path} cannot be read ({exc})") from None
    is_table = isinstance(document, dict) and document.get("format") == FORMAT
    if not is_table or not isinstance(document.get("items"), list):
        raise StateError(f"{path} is not a saved table of format {FORMAT}")
    items: list[RawItem] = document["items"]
    if not all(isinstance(i, dict) and i for i in items):
        raise StateError(f"{path} holds something that is not an item")
    return [_from_text(item) for item in items]


def requeue_open(items: list[RawItem], queue: Any, now: dt.datetime) -> int:
    """Queue the job of every task and event in `items` that has not ended; returns how many."""
    from webhook_service.domain.configs import Task
    from webhook_service.domain.events import Event
    from webhook_service.storage.codec import unmarshal
    from webhook_service.storage.event_items import event_from_items
    from webhook_service.storage.items import task_from_item
    from webhook_service.storage.keys import EVENT_DATA_SK, EVENT_STATE_SK
    from webhook_service.sweep import open_job

    plain = [unmarshal(raw) for raw in items]
    data = {item["PK"]: item for item in plain if item.get("SK") == EVENT_DATA_SK}
    sent = 0
    for item in plain:
        work: Task | Event
        if item.get("resource") == "task":
            work = task_from_item(item)
        elif item.get("SK") == EVENT_STATE_SK and item["PK"] in data:
            work = event_from_items(data[item["PK"]], item)
        else:
            continue
        job = None if work.ended else open_job(work)
        if job is None:
            continue  # ended, or an event with no attempt left
        wait = int(job.get("not_before", 0) - now.timestamp())
        queue.send(job, delay_seconds=max(0, wait))
        sent += 1
    return sent


class SaveLoop:
    """Decides, at each tick, whether to save: when `changes` (a counter of the writes the
    local AWS answered) has moved since the last save, or at every tick without a counter
    (another local AWS). A failed save is logged and tried again at the next tick."""

    def __init__(self, save: Callable[[], int], changes: Callable[[], int] | None) -> None:
        self.save = save
        self.changes = changes
        self._seen: int | None = None

    def tick(self) -> bool:
        current = self.changes() if self.changes else None
        if current is not None and current == self._seen:
            return False
        try:
            self.save()
        except Exception:
            log.exception("saving the local stack failed; it will be tried again")
            return False
        self._seen = current
        return True


class LocalState:
    """The folder of one local stack: locked while it runs, loaded at start, saved at stop."""

    def __init__(self, folder: Path, lock: IO[str]) -> None:
        self.folder = folder
        self._lock = lock
        self._saver: threading.Thread | None = None
        self._stop = threading.Event()
        self._save: Callable[[], int] | None = None

    @classmethod
    def open(cls, folder: str | Path, reset: bool = False) -> LocalState:
        """Take the folder (made if missing); with `reset`, forget what it kept."""
        path = Path(folder).resolve()
        path.mkdir(parents=True, exist_ok=True)
        lock = open(path / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 - held open while the stack runs
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            lock.close()
            raise StateError(f"another local stack (pid {holder}) uses {path}; stop it first") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        state = cls(path, lock)
        if reset:
            for name in (SNAPSHOT, IDENTITY, LISTENING):
                with contextlib.suppress(FileNotFoundError):
                    (path / name).unlink()
        return state

    @property
    def snapshot_path(self) -> Path:
        return self.folder / SNAPSHOT

    @property
    def identity_path(self) -> Path:
        return self.folder / IDENTITY

    def restore(self, client: Any, table: str, queue: Any, ttl: str | None, now: dt.datetime) -> Restored | None:
        """Load the saved items into an empty table and queue again what had not ended.
        None when nothing was saved, or when the table already holds items (another local
        AWS that keeps its own), which are then left as they are."""
        if not self.snapshot_path.exists():
            return None
        saved = read_snapshot(self.snapshot_path)
        if not table_is_empty(client, table):
            log.warning("table %s already holds items: %s is not loaded", table, self.snapshot_path)
            return None
        items = live(saved, ttl, now)
        converted = in_current_layout(items)
        put_items(client, table, with_config_counts(converted))
        return Restored(items=len(items), expired=len(saved) - len(items), requeued=requeue_open(converted, queue, now))

    def read_identity(self) -> dict[str, Any] | None:
        try:
            found = json.loads(self.identity_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise StateError(f"{self.identity_path} cannot be read ({exc})") from None
        return found if isinstance(found, dict) else None

    def write_identity(self, identity: dict[str, Any]) -> None:
        write_atomically(self.identity_path, lambda handle: json.dump(identity, handle, indent=2))

    def save_table(self, client: Any, table: str, ttl: str | None) -> int:
        now = dt.datetime.now(dt.UTC)
        items = live(scan_items(client, table), ttl, now)
        write_snapshot(self.snapshot_path, items, now)
        return len(items)

    def start_saving(
        self, save: Callable[[], int], changes: Callable[[], int] | None, period: float = SAVE_SECONDS
    ) -> None:
        """Save every `period` seconds while something changed (see SaveLoop)."""
        loop = SaveLoop(save, changes)
        self._save = save

        def run() -> None:
            while not self._stop.wait(period):
                loop.tick()

        self._saver = threading.Thread(target=run, name="devstack-save", daemon=True)
        self._saver.start()

    def close(self) -> int | None:
        """Save one last time (the stack has stopped serving), then let the folder go."""
        self._stop.set()
        if self._saver is not None:
            self._saver.join(timeout=60)
        try:
            return self._save() if self._save else None
        finally:
            self._lock.close()


def seed(store: Any, dev_token: str | None, saved: dict[str, Any] | None) -> tuple[str, str, str]:
    """The development organisation and key: (organisation id, key id, token).

    The key of DEV_TOKEN, or else of the saved token, when the table has it. Otherwise a
    new key, with that token, in the saved organisation if the table has it, else in a
    new organisation "Development"."""
    from webhook_service import admin

    token = dev_token or (saved or {}).get("token")
    if token:
        existing = admin.find_key_by_token(store.organisations, token)
        if existing:
            return existing["organisation"], existing["id"], token
    organisation = (saved or {}).get("organisation")
    if not organisation or store.organisations.get(organisation) is None:
        organisation = admin.create_organisation(store.organisations, "Development")["id"]
    key, token = admin.create_key(store.organisations, organisation, token=token)
    return organisation, key["id"], token
