"""Publishing on request once (docs/design.md §7.8): within 24 hours, a publish that names an
idempotency key already used by its organisation returns the first event, and nothing is
delivered twice; a reused key with another request is refused; after the window the key
makes a new event. The first publisher may stop between its claim on the key and storing
its event: the next publish with the key finishes that event, under the same id."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import replace
from typing import Any, cast

import pytest

from bench.dynamocost import TABLE, RecordingClient, table_schemas
from devstack import template
from devstack.aws import serial
from tests.unit.support import Backing, FakeClock, FakeDeliverer, FakeQueue, FakeSender, FakeServices
from webhook_service import admin
from webhook_service.domain.configs import ConfigState
from webhook_service.domain.tenants import Principal
from webhook_service.errors import DependencyError, IdempotencyKeyReusedError, InvalidParameterError
from webhook_service.events import publish
from webhook_service.jobs.dispatch import handle_job
from webhook_service.service import configs as config_cases
from webhook_service.service import publishing
from webhook_service.service import tenants as tenant_cases
from webhook_service.storage.store import Store
from webhook_service.validation import parse_list_query

URL = "https://receiver.example/hooks/"
KEY = "order-42/attempt"
DAY = dt.timedelta(hours=24)


@pytest.fixture
def default_config(services: FakeServices, caller: Principal, store: Store) -> str:
    """A `valid` config that is the organisation's default: every event is delivered there."""
    config = config_cases.create_config(services, caller, {"url": URL})
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    store.configs.replace(replace(stored, state=ConfigState.VALID, open_test=None), stored.version, None)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    return str(config["id"])


@pytest.fixture
def jobs() -> FakeQueue:
    """The events lane that publishing sends to (the deliverer's retries go elsewhere)."""
    return FakeQueue()


@pytest.fixture
def receiver_side(store: Store, clock: FakeClock) -> FakeDeliverer:
    return FakeDeliverer(store=store, sender=FakeSender(), queue=FakeQueue(), clock=clock, jitter=lambda: 0.0)


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> float:
    """The wait for a first publisher's event, scaled down (2 s as deployed)."""
    monkeypatch.setattr(publishing, "FIRST_PUBLISH_WAIT_SECONDS", 0.2)
    return 0.2


def publish_with(
    store: Store,
    queue: FakeQueue,
    caller: Principal,
    clock: FakeClock,
    idempotency_key: str | None = KEY,
    data: dict[str, Any] | None = None,
    **changes: Any,
) -> str:
    """Publish `session completed` (or `changes`: type_, action, key) with the key; the event's id."""
    request: dict[str, Any] = {"type_": "session", "action": "completed", "key": None, **changes}
    event = publish(
        caller.organisation,
        request["type_"],
        request["action"],
        {"id": "s1"} if data is None else data,
        key=request["key"],
        idempotency_key=idempotency_key,
        store=store,
        queue=queue,
        clock=clock,
    )
    return event.id


def deliver_all(deliverer: FakeDeliverer, queue: FakeQueue) -> list[str]:
    """Run every job the publishers queued; the outcome of each."""
    outcomes = []
    while queue.jobs:
        outcomes.append(handle_job(deliverer, json.dumps(queue.jobs.pop(0))).name)
    return outcomes


def listed(store: Store, caller: Principal) -> list[str]:
    return [event.id for event in store.lists.events(caller.organisation, parse_list_query({}, {})).items]


def claims_of(backing: Backing, organisation: str) -> list[dict[str, Any]]:
    """Every item of the table kept for the organisation's idempotency keys."""
    found = backing.dynamodb.scan(
        TableName=backing.table_name,
        FilterExpression="begins_with(PK, :prefix)",
        ExpressionAttributeValues={":prefix": {"S": f"IDEMPOTENCY#{organisation}#"}},
    )
    return list(found["Items"])


# -- once per key ------------------------------------------------------------------------------


def test_publish_same_key_twice_returns_the_first_event_and_delivers_once(
    caller: Principal,
    store: Store,
    clock: FakeClock,
    jobs: FakeQueue,
    receiver_side: FakeDeliverer,
    default_config: str,
) -> None:
    first = publish_with(store, jobs, caller, clock)
    second = publish_with(store, jobs, caller, clock)

    assert second == first
    assert listed(store, caller) == [first]
    assert deliver_all(receiver_side, jobs) == ["delivered"]
    assert len(receiver_side.sender.sent) == 1


def test_publish_same_key_after_delivery_returns_the_delivered_event(
    caller: Principal,
    store: Store,
    clock: FakeClock,
    jobs: FakeQueue,
    receiver_side: FakeDeliverer,
    default_config: str,
) -> None:
    first = publish_with(store, jobs, caller, clock)
    deliver_all(receiver_side, jobs)

    again = publish(
        caller.organisation,
        "session",
        "completed",
        {"id": "s1"},
        idempotency_key=KEY,
        store=store,
        queue=jobs,
        clock=clock,
    )

    assert (again.id, again.state) == (first, "delivered")
    assert jobs.jobs == []


def test_publish_same_key_from_ten_threads_at_once_gives_one_event_and_one_delivery(
    backing: Backing,
    caller: Principal,
    clock: FakeClock,
    jobs: FakeQueue,
    default_config: str,
) -> None:
    store = Store(backing.table_name, serial(backing.dynamodb))  # moto in-process: one call at a time
    deliverer = FakeDeliverer(store=store, sender=FakeSender(), queue=FakeQueue(), clock=clock, jitter=lambda: 0.0)
    start = threading.Barrier(10)
    answers: list[str] = []

    def publisher() -> None:
        start.wait(timeout=10)
        answers.append(publish_with(store, jobs, caller, clock))

    threads = [threading.Thread(target=publisher) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(answers) == 10
    assert len(set(answers)) == 1
    assert listed(store, caller) == answers[:1]
    assert "delivered" in deliver_all(deliverer, jobs)
    assert len(deliverer.sender.sent) == 1


def test_publish_another_key_makes_another_event(
    caller: Principal,
    store: Store,
    clock: FakeClock,
    jobs: FakeQueue,
    receiver_side: FakeDeliverer,
    default_config: str,
) -> None:
    first = publish_with(store, jobs, caller, clock, idempotency_key="order-42")
    other = publish_with(store, jobs, caller, clock, idempotency_key="order-43")

    assert other != first
    assert deliver_all(receiver_side, jobs) == ["delivered", "delivered"]


def test_publish_without_a_key_makes_a_new_event_each_time(
    caller: Principal, store: Store, clock: FakeClock, jobs: FakeQueue
) -> None:
    assert publish_with(store, jobs, caller, clock, None) != publish_with(store, jobs, caller, clock, None)


def test_same_key_in_another_organisation_makes_its_own_event(
    caller: Principal, store: Store, clock: FakeClock, jobs: FakeQueue
) -> None:
    other_organisation = str(admin.create_organisation(store.organisations, "Other")["id"])
    other = replace(caller, organisation=other_organisation)

    assert publish_with(store, jobs, caller, clock) != publish_with(store, jobs, other, clock)
    assert len(jobs.jobs) == 2


# -- the window ----------------------------------------------------------------------------------


def test_publish_same_key_within_24_hours_returns_the_first_event(
    caller: Principal, store: Store, clock: FakeClock, jobs: FakeQueue
) -> None:
    first = publish_with(store, jobs, caller, clock)
    clock.now += DAY - dt.timedelta(seconds=2)

    assert publish_with(store, jobs, caller, clock) == first
    assert len(jobs.jobs) == 1


def test_publish_same_key_after_24_hours_makes_a_new_event_that_the_key_then_names(
    caller: Principal,
    store: Store,
    clock: FakeClock,
    jobs: FakeQueue,
    receiver_side: FakeDeliverer,
    default_config: str,
) -> None:
    first = publish_with(store, jobs, caller, clock)
    clock.now += DAY + dt.timedelta(seconds=1)

    later = publish_with(store, jobs, caller, clock)
    again = publish_with(store, jobs, caller, clock)

    assert later != first
    assert again == later
    assert sorted(listed(store, caller)) == sorted([first, later])
    assert deliver_all(receiver_side, jobs) == ["delivered", "delivered"]


def test_a_claim_past_its_window_but_not_yet_deleted_by_ttl_is_taken_as_gone(
    backing: Backing, caller: Principal, store: Store, clock: FakeClock, jobs: FakeQueue
) -> None:
    first = publish_with(store, jobs, caller, clock)
    (claim,) = claims_of(backing, caller.organisation)
    clock.now = dt.datetime.fromtimestamp(int(claim["expires_at"]["N"]), dt.UTC)  # its first second gone
    assert claims_of(backing, caller.organisation) == [claim]  # TTL deletes late: still there

    later = publish_with(store, jobs, caller, clock)

    (replaced,) = claims_of(backing, caller.organisation)
    assert later != first
    assert replaced["event"] == {"S": later}


def test_a_key_whose_window_ended_may_come_back_with_another_request(
    caller: Principal, store: Store, clock: FakeClock, jobs: FakeQueue
) -> None:
    first = publish_with(store, jobs, caller, clock, data={"id": "s1"})
    clock.now += DAY + dt.timedelta(seconds=1)

    assert publish_with(store, jobs, caller, clock, data={"id": "s2"}) != first


# -- a reused key ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"type_": "device"},
        {"action": "failed"},
        {"data": {"id": "s2"}},
        {"data": {"id": "s1", "more": 1}},
    ],
    ids=["type", "action", "data", "data-grown"],
)
def test_publish_same_key_with_another_request_is_refused_naming_the_key(
    caller: Principal, store: Store, clock: FakeClock, jobs: FakeQueue, changes: dict[str, Any]
) -> None:
    first = publish_with(store, jobs, caller, clock)

    with pytest.raises(IdempotencyKeyReusedError) as refused:
        publish_with(store, jobs, caller, clock, **changes)

    assert isinstance(refused.value, InvalidParameterError)
    assert "idempotency_key" in (refused.value.params or {})
    assert listed(store, caller) == [first]
    assert len(jobs.jobs) == 1


def test_publish_same_key_with_the_data_fields_in_another_order_is_the_same_request(
    caller: Principal, store: Store, clock: FakeClock, jobs: FakeQueue
) -> None:
    first = publish_with(store, jobs, caller, clock, data={"id": "s1", "device": {"a": 1, "b": [{"x": 1, "y": 2}]}})

    again = publish_with(store, jobs, caller, clock, data={"device": {"b": [{"y": 2, "x": 1}], "a": 1}, "id": "s1"})

    assert again == first
    assert len(jobs.jobs) == 1


def test_publish_same_key_for_another_routing_key_is_refused(
    caller: Principal, store: Store, clock: FakeClock, jobs: FakeQueue
) -> None:
    routing_key = str(admin.create_key(store.organisations, caller.organisation)[0]["id"])
    publish_with(store, jobs, caller, clock)

    with pytest.raises(IdempotencyKeyReusedError):
        publish_with(store, jobs, caller, clock, key=routing_key)


def test_publish_same_key_whose_data_differs_only_in_a_dropped_secret_is_the_same_request(
    caller: Principal, store: Store, clock: FakeClock, jobs: FakeQueue
) -> None:
    first = publish_with(store, jobs, caller, clock, data={"id": "s1", "token": "one"})

    assert publish_with(store, jobs, caller, clock, data={"id": "s1", "token": "two"}) == first


# -- what a key may be ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ["", "x" * 256, "café", "tab\there", "line\nbreak", "nul\x00", "del\x7f", 42],
    ids=["empty", "256-chars", "non-ascii", "tab", "newline", "nul", "del", "not-text"],
)
def test_publish_invalid_idempotency_key_is_refused_and_stores_nothing(
    backing: Backing, caller: Principal, store: Store, clock: FakeClock, jobs: FakeQueue, bad: Any
) -> None:
    with pytest.raises(InvalidParameterError) as refused:
        publish_with(store, jobs, caller, clock, bad)

    assert not isinstance(refused.value, IdempotencyKeyReusedError)
    assert "idempotency_key" in (refused.value.params or {})
    assert jobs.jobs == []
    assert listed(store, caller) == []
    assert claims_of(backing, caller.organisation) == []


@pytest.mark.parametrize("good", ["x" * 255, "a", " spaced out ", "!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "ORG#x#y"])
def test_publish_accepts_any_printable_ascii_key_up_to_255_characters(
    caller: Principal, store: Store, clock: FakeClock, jobs: FakeQueue, good: str
) -> None:
    first = publish_with(store, jobs, caller, clock, good)

    assert publish_with(store, jobs, caller, clock, good) == first


def test_a_claim_is_one_small_item_of_its_own_partition_that_expires_with_its_window(
    backing: Backing, caller: Principal, store: Store, clock: FakeClock, jobs: FakeQueue
) -> None:
    event_id = publish_with(store, jobs, caller, clock)

    (claim,) = claims_of(backing, caller.organisation)
    assert KEY not in json.dumps(claim)  # the key is kept as its hash
    assert claim["event"] == {"S": event_id}
    published_at = clock.now.timestamp()
    assert published_at + DAY.total_seconds() <= int(claim["expires_at"]["N"]) <= published_at + DAY.total_seconds() + 1
    assert len(json.dumps(claim)) < 1024  # one write unit


# -- what it costs ----------------------------------------------------------------------------------


def write_units_of_publish(
    backing: Backing, caller: Principal, clock: FakeClock, idempotency_key: str | None
) -> dict[str, float]:
    """Publish once through a store whose client charges every request by DynamoDB's rules
    (bench.dynamocost); the write units charged, by partition kind (`EVENT`, `IDEMPOTENCY`)."""
    recorder = RecordingClient(backing.dynamodb, {backing.table_name: table_schemas(template.load_template())["Table"]})
    publish_with(Store(backing.table_name, cast("Any", recorder)), FakeQueue(), caller, clock, idempotency_key)
    units: dict[str, float] = {}
    for _, charge in recorder.recording.charges:
        if charge.kind == "write" and charge.target == TABLE:
            kind = charge.partition.split("#", 1)[0]
            units[kind] = units.get(kind, 0) + charge.units
    return units


def test_a_publish_with_a_key_costs_one_write_unit_more_and_one_without_none(
    backing: Backing, caller: Principal, clock: FakeClock
) -> None:
    without = write_units_of_publish(backing, caller, clock, None)
    keyed = write_units_of_publish(backing, caller, clock, KEY)
    repeated = write_units_of_publish(backing, caller, clock, KEY)

    assert "IDEMPOTENCY" not in without
    assert keyed == {**without, "IDEMPOTENCY": 1}
    assert repeated == {"IDEMPOTENCY": 1}  # the refused put; the first event is read, not written


# -- a first publisher that stopped midway ---------------------------------------------------------


class HeldQueue(FakeQueue):
    """A queue whose first send waits until `release` is set (a first publisher held up)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()
        self.release = threading.Event()

    def send(self, job: dict[str, Any], delay_seconds: int = 0) -> str:
        if not self.held.is_set():
            self.held.set()
            self.release.wait(timeout=10)
        return super().send(job, delay_seconds)


def test_a_claim_whose_job_was_refused_is_finished_by_the_next_publish_under_its_id(
    caller: Principal,
    store: Store,
    clock: FakeClock,
    jobs: FakeQueue,
    receiver_side: FakeDeliverer,
    default_config: str,
    short_wait: float,
) -> None:
    with pytest.raises(DependencyError):
        publish_with(store, FakeQueue(fail=True), caller, clock)
    assert listed(store, caller) == []  # nothing published, the claim kept

    finished = publish_with(store, jobs, caller, clock)

    assert publish_with(store, jobs, caller, clock) == finished
    assert listed(store, caller) == [finished]
    assert deliver_all(receiver_side, jobs) == ["delivered"]


def test_a_claim_older_than_the_wait_is_finished_at_once(
    backing: Backing,
    caller: Principal,
    store: Store,
    clock: FakeClock,
    jobs: FakeQueue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(DependencyError):
        publish_with(store, FakeQueue(fail=True), caller, clock)
    (claim,) = claims_of(backing, caller.organisation)
    clock.now += dt.timedelta(seconds=publishing.FIRST_PUBLISH_WAIT_SECONDS)
    reads: list[str] = []
    get = store.events.get

    def counted_get(organisation: str, event_id: str) -> Any:
        reads.append(event_id)
        return get(organisation, event_id)

    monkeypatch.setattr(store.events, "get", counted_get)

    finished = publish_with(store, jobs, caller, clock)

    assert finished == claim["event"]["S"]
    assert reads == [finished]  # one look, no wait: its publisher is long gone


def test_a_first_publish_that_queued_its_job_but_stored_nothing_is_delivered_once(
    caller: Principal,
    store: Store,
    clock: FakeClock,
    jobs: FakeQueue,
    receiver_side: FakeDeliverer,
    default_config: str,
    short_wait: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create = store.events.create

    def crash(event: Any) -> Any:
        raise DependencyError("put_item failed: the process stopped")

    monkeypatch.setattr(store.events, "create", crash)
    with pytest.raises(DependencyError):
        publish_with(store, jobs, caller, clock)
    monkeypatch.setattr(store.events, "create", create)
    orphan = jobs.jobs[0]["event"]

    finished = publish_with(store, jobs, caller, clock)

    assert finished == orphan
    assert len(jobs.jobs) == 2  # the first publisher's job and the one that finished it
    assert sorted(deliver_all(receiver_side, jobs)) == ["delivered", "duplicate"]
    assert len(receiver_side.sender.sent) == 1


def test_a_slow_first_publisher_and_the_one_that_finished_for_it_give_one_event_and_one_delivery(
    caller: Principal,
    store: Store,
    clock: FakeClock,
    receiver_side: FakeDeliverer,
    default_config: str,
    short_wait: float,
) -> None:
    slow = HeldQueue()
    answers: list[str] = []
    first = threading.Thread(target=lambda: answers.append(publish_with(store, slow, caller, clock)))
    first.start()
    assert slow.held.wait(timeout=10)  # claimed, its job not yet sent

    finished = publish_with(store, slow, caller, clock)  # waits, then finishes the event itself
    slow.release.set()
    first.join(timeout=10)

    assert answers == [finished]
    assert listed(store, caller) == [finished]
    assert sorted(deliver_all(receiver_side, slow)) == ["delivered", "duplicate"]
    assert len(receiver_side.sender.sent) == 1


# -- the operator command line ---------------------------------------------------------------------


@pytest.fixture
def operator(
    backing: Backing, store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Runs `publish-event` of the operator command line on the module's table and queue:
    (exit code, what it printed on standard output, its last line on standard error)."""
    from webhook_service import cli

    monkeypatch.setattr(cli, "log_to_stderr", lambda: None)  # it would keep capsys's stream
    monkeypatch.setenv("TABLE_NAME", store.table.name)
    monkeypatch.setenv("QUEUE_URL", backing.queue_url)

    def run(organisation: str, *args: str) -> tuple[int, str, str]:
        command = ["publish-event", "--organisation", organisation, "--type", "session", "--action", "completed"]
        code = cli.main([*command, *args])
        out, err = capsys.readouterr()
        return code, out, (err.strip().splitlines() or [""])[-1]

    return run


def test_cli_publish_event_with_the_same_idempotency_key_prints_the_first_event(
    caller: Principal, operator: Any
) -> None:
    code, first, _ = operator(caller.organisation, "--idempotency-key", KEY, "--data", '{"id": "s1"}')
    again, second, _ = operator(caller.organisation, "--idempotency-key", KEY, "--data", '{"id": "s1"}')

    assert (code, again) == (0, 0)
    assert json.loads(second)["id"] == json.loads(first)["id"]


def test_cli_publish_event_reusing_a_key_for_other_data_prints_invalid_parameter(
    caller: Principal, operator: Any
) -> None:
    operator(caller.organisation, "--idempotency-key", KEY, "--data", '{"id": "s1"}')

    code, out, err = operator(caller.organisation, "--idempotency-key", KEY, "--data", '{"id": "s2"}')

    error = json.loads(err)
    assert (code, out) == (1, "")
    assert error["error"] == "invalid-parameter"
    assert "24 hours" in error["params"]["idempotency_key"]


def test_cli_publish_event_with_an_invalid_idempotency_key_prints_invalid_parameter(
    caller: Principal, operator: Any
) -> None:
    code, out, err = operator(caller.organisation, "--idempotency-key", "x" * 256)

    assert (code, out) == (1, "")
    assert "idempotency_key" in json.loads(err)["params"]


def test_cli_publish_event_help_describes_the_idempotency_key(capsys: pytest.CaptureFixture[str]) -> None:
    from webhook_service import cli

    with pytest.raises(SystemExit):
        cli.main(["publish-event", "--help"])

    shown = " ".join(capsys.readouterr().out.split())
    assert "--idempotency-key" in shown
    assert "24 hours" in shown
