"""List cost: items DynamoDB reads to answer one list page. Counted, not timed: the sum of
`ScannedCount` of every Query and of the items of every GetItem and BatchGetItem a page
makes, on the template's table.

1. Tenancy (moto): 25 configs of one organisation among 10,000 of other organisations
   (`LIST_OTHER_CONFIGS`). Target: listing the organisation's 25 configs reads no more than
   a page's bound (`storage.planning.read_bound`: its index entries and the configs they
   name): a list never reads another organisation's items.
2. History: 100,000 items of the caller's own organisation (`LIST_OWN_ITEMS`): configs,
   tasks and events spread over 30 days, with every value the filters take. Every page
   shape (plain, `state=`, `type=`/`target=`, a date range, `after_id`, `before_id`, at
   limit 10 and 1000, and filters that no index serves) is listed once. Target: a page
   reads no more than its bound, whatever the history (`storage.planning.read_bound`: at
   most limit + 1 index entries, MERGE_SLACK more per shard merged (events: EVENT_SHARDS
   shards, a plain list each state's), the items they name, and BOOKKEEPING_ITEMS).

moto reads, sorts and copies the whole table for every Query: at 100,000 items the pages
would take many minutes. So the history is listed from `bench.readreplica` (the same
items, the template's key schema, DynamoDB's Query semantics), after the same page shapes
on a smaller history (`LIST_CHECK_ITEMS`) gave the same answers from the replica as from
moto: items, `has_more`, `total_count` and items read, page by page.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack import aws, template

OTHER_CONFIGS = int(os.environ.get("LIST_OTHER_CONFIGS", "10000"))
OWN_CONFIGS = 25
OWN_ITEMS = int(os.environ.get("LIST_OWN_ITEMS", "100000"))
CHECK_ITEMS = int(os.environ.get("LIST_CHECK_ITEMS", "400"))  # the replica is checked against moto at this size
# A page may read, besides its limit + 1 items, this many bookkeeping items: the items of
# its cursors (`after_id`, `before_id`) and the organisation's config counts.
BOOKKEEPING_ITEMS = 3  # storage.LIST_BOOKKEEPING_ITEMS, checked by tests/unit/test_bench.py
# The history's mix: configs, then tasks (tests of configs), then events.
MIX = {"webhook_config": 0.01, "task": 0.24, "event": 0.75}
HISTORY = dt.timedelta(days=30)  # tasks and events expire after 30 days
SEED = 15


class CountingClient:
    """Counts the items each read reads, and the requests made."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.items_read = 0
        self._lock = threading.Lock()  # a merged list page reads its shards on several threads
        self.requests: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            response = attribute(*args, **kwargs)
            with self._lock:
                self._count(name, response)
            return response

        return call

    def _count(self, name: str, response: Any) -> None:
        self.requests.append(name)
        if name == "query":
            self.items_read += int(response.get("ScannedCount", 0))
        elif name == "get_item":
            self.items_read += 1 if "Item" in response else 0
        elif name == "batch_get_item":
            self.items_read += sum(len(found) for found in response.get("Responses", {}).values())
        elif name == "scan":
            raise AssertionError("a list must never scan")


def write_items(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    """Store items (already built by the storage module) 25 at a time."""
    from webhook_service.storage.codec import marshal

    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": marshal(i)}} for i in items[start : start + 25]]
        client.batch_write_item(RequestItems={table: batch})


# -- part 1: tenancy -------------------------------------------------------------------------------


def tenancy(client: Any, table: str) -> bool:
    from webhook_service.domain.configs import new_config
    from webhook_service.domain.tenants import KeyState, Principal
    from webhook_service.service.configs import list_configs
    from webhook_service.storage.items import config_counts_item, config_item
    from webhook_service.storage.planning import read_bound
    from webhook_service.timefmt import utcnow

    items = [config_item(new_config(str(uuid.uuid4()), "https://r.example/", utcnow())) for _ in range(OTHER_CONFIGS)]
    mine = str(uuid.uuid4())
    items += [config_item(new_config(mine, f"https://r.example/{n}", utcnow())) for n in range(OWN_CONFIGS)]
    items.append(config_counts_item(mine, {"new": OWN_CONFIGS}))  # as create_config keeps them
    write_items(client, table, items)

    counting = CountingClient(client)
    services = _services(table, counting)
    caller = Principal(key_id="bench", organisation=mine, state=KeyState.ACTIVE)
    print(f"list cost, tenancy: {OWN_CONFIGS} configs of one organisation among {OTHER_CONFIGS:,} of others")
    print(f"  {'request':44} {'returned':>8} {'items read':>10} {'budget':>8}  requests")
    met = True
    cases: list[tuple[str, dict[str, str]]] = [
        ("GET /configs/webhook?limit=25", {"limit": "25"}),
        ("GET /configs/webhook?limit=100", {"limit": "100"}),
        ("GET /configs/webhook?state=new&limit=25", {"state": "new", "limit": "25"}),
        ("GET /configs/webhook?limit=10 (has_more)", {"limit": "10"}),
    ]
    first_page = list_configs(services, caller, {"limit": "10"})
    cases.append(("GET ...?limit=10&after_id=<10th>", {"limit": "10", "after_id": first_page["data"][-1]["id"]}))
    for label, params in cases:
        counting.items_read, counting.requests = 0, []
        page = list_configs(services, caller, dict(params))
        budget = read_bound("webhook_config", int(params["limit"]))
        print(
            f"  {label:44} {len(page['data']):8} {counting.items_read:10} {budget:8}  {','.join(counting.requests)}"
            f"  total_count={page['total_count']}"
        )
        met = met and counting.items_read <= budget
    verdict = "met" if met else "NOT met"
    print(
        f"  target (a page reads no more than its bound, its index entries and the configs they name; "
        f"never another organisation's): {verdict}"
    )
    return met


def _services(table: str, client: Any) -> Any:
    from webhook_service.auth import Authenticator
    from webhook_service.jobqueue import JobQueue
    from webhook_service.service.context import Services
    from webhook_service.storage.store import Store

    # Lists need only the store; the queue is never sent to (nor its client made) here.
    store = Store(table, client)
    return Services(store=store, queue=JobQueue("unused"), authenticator=Authenticator(store.organisations))


# -- part 2: history -------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """One organisation's items, and the values the page shapes name."""

    organisation: str
    items: list[dict[str, Any]]
    counts: dict[str, int]
    hot_config: str  # the target of half the tasks
    start: dt.datetime  # the oldest item's date; the newest is HISTORY later


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


CONFIG_STATES = {"valid": 0.7, "new": 0.1, "invalid": 0.1, "deactivated": 0.1}
TASK_STATES = {"succeeded": 0.85, "failed": 0.12, "pending": 0.02, "processing": 0.01}
EVENT_TYPES = {"session": 0.5, "subscription": 0.3, "poll": 0.15, "file": 0.05}
EVENT_ACTIONS = {"completed": 0.6, "created": 0.3, "failed": 0.1}
EVENT_STATES = {"delivered": 0.96, "failed": 0.03, "pending": 0.01}


def history(total: int, now: dt.datetime, seed: int = SEED) -> History:
    """`total` items of one new organisation, built by the storage module's item builders:
    configs, then tasks and events; dates spread evenly over the last 30 days."""
    from webhook_service.domain.configs import (
        TASK_TYPE_TEST,
        ConfigState,
        Task,
        TaskState,
        WebhookConfig,
        generate_secret,
    )
    from webhook_service.domain.events import Event, EventState
    from webhook_service.storage.event_items import event_data_item, event_state_item
    from webhook_service.storage.items import config_counts_item, config_item, task_item

    rng = random.Random(seed)
    organisation = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    counts = {kind: max(5, round(total * share)) for kind, share in MIX.items()}  # a few of each, however small
    counts["event"] = max(5, total - counts["webhook_config"] - counts["task"])
    start = now - HISTORY
    step = HISTORY / sum(counts.values())

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    config_ids = [new_id() for _ in range(counts["webhook_config"])]
    key = new_id()
    kinds = [kind for kind, n in counts.items() for _ in range(n)]
    rng.shuffle(kinds)  # every kind spread over the whole 30 days
    configs = iter(config_ids)
    items: list[dict[str, Any]] = []
    for n, kind in enumerate(kinds):
        created = start + step * n
        if kind == "webhook_config":
            items.append(
                config_item(
                    WebhookConfig(
                        id=next(configs),
                        organisation=organisation,
                        url=f"https://r.example/{n}",
                        secret=generate_secret(),
                        state=ConfigState(_pick(rng, CONFIG_STATES)),
                        version=1,
                        date_created=created,
                    )
                )
            )
        elif kind == "task":
            state = _pick(rng, TASK_STATES)
            ended = state in ("succeeded", "failed")
            items.append(
                task_item(
                    Task(
                        id=new_id(),
                        organisation=organisation,
                        key=key,
                        type=TASK_TYPE_TEST,
                        target=config_ids[0] if rng.random() < 0.5 else rng.choice(config_ids),
                        target_version=1,
                        state=TaskState(state),
                        date_created=created,
                        error=None if state != "failed" else "webhook-response-status",
                        result={"status_code": 200, "duration_ms": 40, "response_excerpt": "ok"} if ended else None,
                        date_started=created if state != "pending" else None,
                        date_completed=created if ended else None,
                    )
                )
            )
        else:
            state = _pick(rng, EVENT_STATES)
            event = Event(
                id=new_id(),
                organisation=organisation,
                type=_pick(rng, EVENT_TYPES),
                action=_pick(rng, EVENT_ACTIONS),
                data={"id": new_id(), "state": "completed"},
                state=EventState(state),
                date_created=created,
                key=key,
                attempts=0 if state == "pending" else 1,
                webhook_config=config_ids[0],
                date_delivered=created if state != "pending" else None,
            )
            items += [event_data_item(event), event_state_item(event)]
    by_state: dict[str, int] = {}
    for item in items:
        if item.get("resource") == "webhook_config":
            by_state[item["state"]] = by_state.get(item["state"], 0) + 1
    items.append(config_counts_item(organisation, by_state))  # kept by every config write
    return History(organisation=organisation, items=items, counts=counts, hot_config=config_ids[0], start=start)


@dataclass(frozen=True)
class Shape:
    """One page: which list, its parameters, and the name printed for it."""

    resource: str  # webhook_config, task or event
    label: str
    params: dict[str, str]


@dataclass(frozen=True)
class Measured:
    shape: Shape
    returned: int
    has_more: bool
    total_count: int
    items_read: int
    requests: list[str]
    ids: tuple[str, ...]
    capped: bool = False

    @property
    def limit(self) -> int:
        return int(self.shape.params.get("limit", "10"))

    @property
    def budget(self) -> int:
        from webhook_service.storage.planning import read_bound

        return read_bound(self.shape.resource, self.limit)

    @property
    def over(self) -> bool:
        return self.items_read > self.budget


def _lister(resource: str) -> Callable[..., dict[str, Any]]:
    from webhook_service.service import configs as config_cases
    from webhook_service.service import events as event_cases
    from webhook_service.service import tasks as task_cases

    return {
        "webhook_config": config_cases.list_configs,
        "task": task_cases.list_tasks,
        "event": event_cases.list_events,
    }[resource]


def shapes(hist: History, services: Any, caller: Any) -> list[Shape]:
    """Every page shape, with cursors taken from real pages (read here, not counted)."""
    day = dt.timedelta(days=1)
    window = {
        "date_created[gte]": (hist.start + 10 * day).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "date_created[lt]": (hist.start + 20 * day).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    by_resource: dict[str, list[tuple[str, dict[str, str]]]] = {
        "webhook_config": [("plain", {}), ("state=valid", {"state": "valid"})],
        "task": [
            ("plain", {}),
            ("state=failed", {"state": "failed"}),
            ("target=<hot config>", {"target": hist.hot_config}),
            ("type=webhook_config.test", {"type": "webhook_config.test"}),
        ],
        "event": [("plain", {}), ("state=delivered", {"state": "delivered"}), ("type=session", {"type": "session"})],
    }
    found: list[Shape] = []
    for resource, filters in by_resource.items():
        lister = _lister(resource)
        newest = lister(services, caller, {"limit": "10"})["data"]
        middle = lister(services, caller, {"limit": str(min(500, max(1, hist.counts[resource] // 2)))})["data"]
        cursors = [("after_id=<10th newest>", {"after_id": newest[-1]["id"]})] if newest else []
        if middle:
            cursors.append(("before_id=<a middle one>", {"before_id": middle[-1]["id"]}))
        for limit in ("10", "1000"):
            for label, params in [*filters, ("date range (10 of 30 days)", window), *cursors]:
                found.append(Shape(resource, f"{label}&limit={limit}", {**params, "limit": limit}))
    # Filters that no index serves today: read until limit + 1 matches turn up.
    found += [
        Shape("event", "action=failed&limit=10", {"action": "failed", "limit": "10"}),
        Shape("event", "type=file&state=failed&limit=10", {"type": "file", "state": "failed", "limit": "10"}),
        Shape(
            "task",
            "target=<hot>&state=pending&limit=10",
            {"target": hist.hot_config, "state": "pending", "limit": "10"},
        ),
    ]
    return found


def measure_pages(client: Any, table: str, hist: History) -> list[Measured]:
    """List every page shape of the history's organisation, counting what each page reads."""
    from webhook_service.domain.tenants import KeyState, Principal

    caller = Principal(key_id="bench", organisation=hist.organisation, state=KeyState.ACTIVE)
    counting = CountingClient(client)
    counted = _services(table, counting)
    results = []
    for shape in shapes(hist, _services(table, client), caller):
        counting.items_read, counting.requests = 0, []
        page = _lister(shape.resource)(counted, caller, dict(shape.params))
        results.append(
            Measured(
                shape=shape,
                returned=len(page["data"]),
                has_more=page["has_more"],
                total_count=page["total_count"],
                items_read=counting.items_read,
                requests=list(counting.requests),
                ids=tuple(resource["id"] for resource in page["data"]),
                capped=bool(page.get("total_count_capped")),
            )
        )
    return results


PATHS = {"webhook_config": "GET /configs/webhook", "task": "GET /tasks", "event": "GET /events"}


def report(hist: History, results: list[Measured]) -> list[str]:
    from webhook_service.storage.keys import EVENT_SHARDS
    from webhook_service.storage.merge import MERGE_SLACK

    counts = ", ".join(f"{n:,} {kind}s" for kind, n in hist.counts.items())
    lines = [
        f"list cost, history: {len(hist.items):,} items of the caller's own organisation ({counts}) over 30 days",
        f"  budget per page (storage.planning.read_bound): limit + 1 index entries, for events {EVENT_SHARDS} x "
        f"{MERGE_SLACK} more (their shards merged; a plain list, each state's), the items they name, and "
        f"{BOOKKEEPING_ITEMS} bookkeeping items; a total marked + is capped (total_count_capped: the matches the "
        "page read)",
        f"  {'page':58} {'returned':>8} {'total':>7} {'items read':>10} {'budget':>7}  requests",
    ]
    for m in results:
        mark = "  OVER" if m.over else ""
        requests = ",".join(f"{name}x{m.requests.count(name)}" for name in dict.fromkeys(m.requests))
        total = f"{m.total_count}{'+' if m.capped else ''}"
        lines.append(
            f"  {PATHS[m.shape.resource] + '?' + m.shape.label:58} {m.returned:8} {total:>7} "
            f"{m.items_read:10,} {m.budget:7}  {requests}{mark}"
        )
    over = [m for m in results if m.over]
    lines.append(
        f"  pages over budget: {len(over)} of {len(results)}; most read: {max(m.items_read for m in results):,} items"
    )
    lines.append(f"  target (every page within its budget): {'met' if not over else 'NOT met'}")
    return lines


def disagreements(moto: list[Measured], replica: list[Measured]) -> list[str]:
    """Where the replica's pages differ from moto's (the request counts may: see readreplica)."""
    found = []
    for a, b in zip(moto, replica, strict=True):
        seen_a = (a.ids, a.has_more, a.total_count, a.items_read, a.capped)
        seen_b = (b.ids, b.has_more, b.total_count, b.items_read, b.capped)
        if a.shape != b.shape or seen_a != seen_b:
            found.append(f"{a.shape.resource} {a.shape.label}: moto {seen_a[1:]}, replica {seen_b[1:]}")
    return found


def replica_of(table: str, hist: History) -> Any:
    from bench.dynamocost import table_schemas
    from bench.readreplica import ReadReplica
    from webhook_service.storage.codec import marshal

    (schema,) = table_schemas(template.load_template()).values()
    return ReadReplica(table, schema, [marshal(item) for item in hist.items])


def main() -> int:
    import boto3
    from moto import mock_aws

    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "b", "AWS_SECRET_ACCESS_KEY": "b"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    now = dt.datetime.now(dt.UTC)
    with mock_aws():
        client = boto3.client("dynamodb")
        stack = aws.deploy(template.load_template(), {"Stage": "dev"}, stack_name="listcost-tenancy")
        tenancy(client, stack.refs["Table"])
        print()

        started = time.monotonic()
        stack = aws.deploy(template.load_template(), {"Stage": "dev"}, stack_name="listcost-check")
        small = history(CHECK_ITEMS, now)
        write_items(client, stack.refs["Table"], small.items)
        differ = disagreements(
            measure_pages(client, stack.refs["Table"], small),
            measure_pages(replica_of(stack.refs["Table"], small), stack.refs["Table"], small),
        )
        checked = time.monotonic() - started
    print(
        f"read replica against moto, {CHECK_ITEMS:,} items, every page shape: "
        f"{'the same answers' if not differ else 'DIFFERENT'} ({checked:.0f} s)"
    )
    for line in differ:
        print(f"  {line}")
    if differ:
        return 1

    started = time.monotonic()
    hist = history(OWN_ITEMS, now)
    results = measure_pages(replica_of("history", hist), "history", hist)
    print("\n".join(report(hist, results)))
    print(f"  ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
