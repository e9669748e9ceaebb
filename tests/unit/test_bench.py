"""The benchmarks' core logic, so that CI keeps them working: DynamoDB's cost rules as
bench/dynamocost.py applies them (on a table of the test's own, so that these tests do not
depend on the service's layout), and bench/capacity.py and bench/listcost.py run end to
end at a tiny size on the template's table."""

from __future__ import annotations

import ast
import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bench import capacity, listcost
from bench.dynamocost import (
    TABLE,
    Charge,
    IndexSchema,
    RecordingClient,
    TableSchema,
    UnknownOperationError,
    failed_write_charges,
    item_size,
    read_units,
    table_schemas,
    value_size,
    write_charges,
    write_units,
)
from bench.readreplica import ReadReplica
from devstack import template
from tests.unit.support import BASE_TIME, Backing
from webhook_service.storage.keys import EVENT_SHARDS, OPEN_SHARDS
from webhook_service.storage.merge import MERGE_SLACK
from webhook_service.storage.planning import LIST_BOOKKEEPING_ITEMS

# A table shaped like a template's, with two sparse indexes: one projecting everything,
# one projecting keys only.
TEST_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "Things": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": n, "AttributeType": "S"} for n in ("P", "S", "StateP", "Due", "OpenP")
                ],
                "KeySchema": [{"AttributeName": "P", "KeyType": "HASH"}, {"AttributeName": "S", "KeyType": "RANGE"}],
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": "ByStateX",
                        "KeySchema": [
                            {"AttributeName": "StateP", "KeyType": "HASH"},
                            {"AttributeName": "S", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    },
                    {
                        "IndexName": "OpenX",
                        "KeySchema": [
                            {"AttributeName": "OpenP", "KeyType": "HASH"},
                            {"AttributeName": "Due", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    },
                ],
            },
        },
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
    }
}
SCHEMA = table_schemas(TEST_TEMPLATE)["Things"]


def s(value: str) -> dict[str, str]:
    return {"S": value}


def thing(name: str, state: str | None = None, *, open_: bool = False, body: str = "") -> dict[str, Any]:
    item: dict[str, Any] = {"P": s("org#1"), "S": s(f"thing#{name}"), "body": s(body)}
    if state:
        item["StateP"] = s(f"org#1#state={state}")
    if open_:
        item.update({"OpenP": s("open#0"), "Due": s(f"2026#{name}")})
    return item


def units(charges: list[Charge]) -> list[tuple[str, str, str, float]]:
    return [(c.target, c.partition, c.kind, c.units) for c in charges]


# -- the documented rules -------------------------------------------------------------------------


def test_table_schemas_reads_keys_indexes_and_projections_from_a_template() -> None:
    expected = TableSchema(
        hash_key="P",
        range_key="S",
        indexes=(IndexSchema("ByStateX", "StateP", "S", "ALL"), IndexSchema("OpenX", "OpenP", "Due", "KEYS_ONLY")),
    )
    assert expected == SCHEMA
    assert list(table_schemas(template.load_template())) == ["Table"]  # the service's one table


def test_item_size_follows_the_documented_rules() -> None:
    assert item_size({"name": s("abc")}) == 4 + 3
    assert value_size({"S": "é"}) == 2  # UTF-8 bytes
    assert value_size({"N": "123"}) == 3  # 3 significant digits: 2 bytes, plus 1
    assert value_size({"N": "1000"}) == 2  # trailing zeros trimmed
    assert value_size({"N": "-0.05"}) == 2
    assert value_size({"BOOL": True}) == value_size({"NULL": True}) == 1
    assert value_size({"L": [s("a"), {"N": "1"}]}) == 3 + (1 + 1) + (1 + 2)
    assert value_size({"M": {"k": s("v")}}) == 3 + 1 + 1 + 1
    assert value_size({"SS": ["ab", "c"]}) == 3


def test_units_round_up_per_kib_written_and_per_4_kib_read() -> None:
    assert (write_units(0), write_units(1024), write_units(1025)) == (1, 1, 2)
    assert (read_units(0, consistent=True), read_units(4096, consistent=True)) == (1.0, 1.0)
    assert (read_units(4097, consistent=True), read_units(4097, consistent=False)) == (2.0, 1.0)


def test_a_new_item_is_written_on_the_table_and_on_each_index_that_holds_it() -> None:
    assert units(write_charges(SCHEMA, "put_item", None, thing("a", "new"))) == [
        (TABLE, "org#1", "write", 1),
        ("ByStateX", "org#1#state=new", "write", 1),
    ]


def test_changing_an_index_key_deletes_from_one_partition_and_puts_on_another() -> None:
    old, new = thing("a", "new", body="x" * 1500), thing("a", "valid", body="x" * 1500)
    assert units(write_charges(SCHEMA, "update_item", old, new)) == [
        (TABLE, "org#1", "write", 2),
        ("ByStateX", "org#1#state=new", "write", 2),
        ("ByStateX", "org#1#state=valid", "write", 2),
    ]


def test_a_projected_change_writes_once_and_an_index_that_does_not_project_it_not_at_all() -> None:
    old, new = thing("a", "new", open_=True), thing("a", "new", open_=True, body="changed")
    assert units(write_charges(SCHEMA, "update_item", old, new)) == [
        (TABLE, "org#1", "write", 1),
        ("ByStateX", "org#1#state=new", "write", 1),
    ]


def test_leaving_a_sparse_index_is_one_delete_there() -> None:
    old, new = thing("a", "new", open_=True), thing("a", "new")
    assert ("OpenX", "open#0", "write", 1) in units(write_charges(SCHEMA, "put_item", old, new))


def test_transactions_double_the_table_write_and_failed_writes_touch_no_index() -> None:
    big = thing("a", "new", body="x" * 2500)
    assert units(write_charges(SCHEMA, "transact_write_items", None, big, transactional=True))[0][3] == 6
    assert units(failed_write_charges(SCHEMA, "put_item", big, big)) == [(TABLE, "org#1", "write", 3)]
    assert units(failed_write_charges(SCHEMA, "put_item", big, None)) == [(TABLE, "org#1", "write", 1)]


# -- the recording client, on moto ------------------------------------------------------------------


@pytest.fixture
def recorder(backing: Backing) -> Iterator[RecordingClient]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    props = TEST_TEMPLATE["Resources"]["Things"]["Properties"]
    backing.dynamodb.create_table(TableName=name, **props)
    try:
        yield RecordingClient(backing.dynamodb, {name: SCHEMA})
    finally:
        backing.dynamodb.delete_table(TableName=name)


def table_of(recorder: RecordingClient) -> str:
    (name,) = recorder._tables
    return name


def charged(recorder: RecordingClient) -> list[tuple[str, str, str, float]]:
    found = units([c for _, c in recorder.recording.charges])
    recorder.recording.charges.clear()
    return found


def test_recorder_charges_writes_from_the_items_before_and_after(recorder: RecordingClient) -> None:
    table = table_of(recorder)
    recorder.put_item(TableName=table, Item=thing("a", "new", open_=True))
    assert charged(recorder) == [
        (TABLE, "org#1", "write", 1),
        ("ByStateX", "org#1#state=new", "write", 1),
        ("OpenX", "open#0", "write", 1),
    ]
    recorder.update_item(
        TableName=table,
        Key={"P": s("org#1"), "S": s("thing#a")},
        UpdateExpression="SET StateP = :s REMOVE OpenP",
        ExpressionAttributeValues={":s": s("org#1#state=valid")},
    )
    assert charged(recorder) == [
        (TABLE, "org#1", "write", 1),
        ("ByStateX", "org#1#state=new", "write", 1),
        ("ByStateX", "org#1#state=valid", "write", 1),
        ("OpenX", "open#0", "write", 1),
    ]
    with pytest.raises(ClientError):
        recorder.put_item(TableName=table, Item=thing("a", "new"), ConditionExpression="attribute_not_exists(P)")
    assert charged(recorder) == [(TABLE, "org#1", "write", 1)]  # a failed condition still costs
    assert recorder.recording.requests == {("-", "put_item"): 2, ("-", "update_item"): 1}


def test_recorder_charges_a_query_for_every_item_it_evaluated_not_only_those_returned(
    recorder: RecordingClient,
) -> None:
    table = table_of(recorder)
    for n in range(6):
        recorder.put_item(TableName=table, Item=thing(f"{n}", "new", body="x" * 1000))
    recorder.recording.charges.clear()
    page = recorder.query(
        TableName=table,
        IndexName="ByStateX",
        KeyConditionExpression="#p = :p",
        FilterExpression="body = :none",
        ExpressionAttributeNames={"#p": "StateP"},
        ExpressionAttributeValues={":p": s("org#1#state=new"), ":none": s("")},
        Limit=5,
    )
    assert page["Count"] == 0
    assert page["ScannedCount"] == 5
    size = sum(item_size(thing(f"{n}", "new", body="x" * 1000)) for n in range(5))
    assert charged(recorder) == [("ByStateX", "org#1#state=new", "read", math.ceil(size / 4096) / 2)]


def test_recorder_charges_reads_of_missing_items_and_batches_per_item(recorder: RecordingClient) -> None:
    table = table_of(recorder)
    recorder.put_item(TableName=table, Item=thing("a", body="x" * 5000))
    recorder.recording.charges.clear()
    recorder.get_item(TableName=table, Key={"P": s("org#1"), "S": s("thing#none")}, ConsistentRead=True)
    recorder.batch_get_item(
        RequestItems={table: {"Keys": [{"P": s("org#1"), "S": s("thing#a")}, {"P": s("org#1"), "S": s("thing#b")}]}}
    )
    assert charged(recorder) == [
        (TABLE, "org#1", "read", 1.0),
        (TABLE, "org#1", "read", 1.0),  # 5 KB eventually consistent: 2 blocks, half each
        (TABLE, "org#1", "read", 0.5),
    ]


def test_recorder_doubles_transactions_and_refuses_requests_it_cannot_charge(recorder: RecordingClient) -> None:
    table = table_of(recorder)
    recorder.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": thing("a")}}])
    assert charged(recorder) == [(TABLE, "org#1", "write", 2)]
    with pytest.raises(UnknownOperationError):
        recorder.execute_statement(Statement=f'SELECT * FROM "{table}"')  # noqa: S608 - a fixed test table


# -- the benchmarks, tiny ---------------------------------------------------------------------------


def test_capacity_measures_every_event_delivered_and_a_ceiling_from_its_busiest_partition(
    backing: Backing,
) -> None:
    queue_url = backing.sqs.create_queue(QueueName=f"capacity-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    try:
        run = capacity.measure(
            backing.dynamodb,
            {backing.table_name: table_schemas(template.load_template())["Table"]},
            backing.table_name,
            backing.sqs,
            queue_url,
            events=4,
            data_bytes=2048,
            list_every=2,
            batch_size=3,
        )
    finally:
        backing.sqs.delete_queue(QueueUrl=queue_url)

    assert run.delivered == 4
    assert run.lists == 2
    loads = capacity.partition_loads(run)
    rate, busiest = capacity.ceiling(run)
    assert rate == min(load.rate for load in loads) == busiest.rate
    # Every event is written at least once on the table, at its stored size: what was
    # published, in an item of its own with its data compressed.
    table_writes = sum(load.write_units for load in loads if load.target == TABLE)
    assert table_writes >= write_units(run.event_item_bytes) >= 1
    # The busiest partition (or each of a family's shards) takes the whole limit of what
    # bounds it at that rate: its busiest second, mean plus PEAK_DEVIATIONS standard
    # deviations when an event lands on one shard of several at random.
    units, limit = (
        (busiest.write_units, capacity.PARTITION_WRITE_UNITS)
        if busiest.bound_by == "writes"
        else (busiest.read_units, capacity.PARTITION_READ_UNITS)
    )
    assert busiest.shards is not None
    per_shard = rate / busiest.shards
    peak = per_shard + (capacity.PEAK_DEVIATIONS * per_shard**0.5 if busiest.shards > 1 else 0)
    assert peak * units == pytest.approx(limit)
    # An event's index entries spread over EVENT_SHARDS shards.
    sharded = [load for load in loads if load.partition.endswith("#<nn>")]
    assert sharded
    assert {load.shards for load in sharded} == {EVENT_SHARDS}
    # The events' own partitions are no bound: each takes one event's writes.
    own = [load for load in loads if load.partition.startswith("EVENT#")]
    assert own
    assert all(load.shards is None and load.rate == float("inf") for load in own)
    requests, writes, _reads, sqs = capacity.per_event(run)
    assert requests > 0
    assert writes == pytest.approx(sum(load.write_units for load in loads))
    assert sqs >= 1  # at least the publish's send
    assert capacity.price_per_million(run, memory_mb=512).total > 0
    assert any("ceiling for one organisation" in line for line in capacity.report(run))


def test_capacity_sample_data_is_exactly_the_size_asked() -> None:
    import json

    for size in capacity.DATA_SIZES:
        assert len(json.dumps(capacity.sample_data(size), separators=(",", ":"))) == size


@pytest.fixture
def service_table(backing: Backing) -> Iterator[str]:
    """A new table with the template's key schema and indexes (so that its queries read
    only this test's items, quickly)."""
    (props,) = [
        r["Properties"] for r in template.load_template()["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"
    ]
    name = f"lists-{uuid.uuid4().hex[:8]}"
    wanted = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
    backing.dynamodb.create_table(TableName=name, **{k: v for k, v in props.items() if k in wanted})
    try:
        yield name
    finally:
        backing.dynamodb.delete_table(TableName=name)


def test_listcost_replica_answers_every_page_shape_as_moto_does(backing: Backing, service_table: str) -> None:
    hist = listcost.history(100, BASE_TIME)
    listcost.write_items(backing.dynamodb, service_table, hist.items)

    on_moto = listcost.measure_pages(backing.dynamodb, service_table, hist)
    on_replica = listcost.measure_pages(listcost.replica_of(service_table, hist), service_table, hist)

    assert listcost.disagreements(on_moto, on_replica) == []
    labels = {(m.shape.resource, m.shape.label.split("=")[0].split("&")[0]) for m in on_moto}
    for resource in ("webhook_config", "task", "event"):
        for shape in ("plain", "state", "date range (10 of 30 days)", "after_id", "before_id"):
            assert (resource, shape) in labels
    assert {("task", "target"), ("task", "type"), ("event", "type"), ("event", "action")} <= labels
    assert all(m.returned > 0 for m in on_moto if m.shape.label.startswith(("plain", "state", "date")))
    over = [f"{m.shape.resource} {m.shape.label}: {m.items_read}" for m in on_moto if m.over]
    assert over == []  # every page within limit + 1 + the bookkeeping items
    assert any(m.capped for m in on_moto)
    config_counted = [m for m in on_moto if m.shape.resource == "webhook_config" and "date" not in m.shape.label]
    assert config_counted
    assert not any(m.capped for m in config_counted)  # kept counts: exact
    assert any("pages over budget: 0" in line for line in listcost.report(hist, on_moto))


def test_listcost_bookkeeping_items_are_the_storage_modules() -> None:
    assert listcost.BOOKKEEPING_ITEMS == LIST_BOOKKEEPING_ITEMS


def test_listcost_budget_is_the_storage_read_bound_of_the_page() -> None:
    from webhook_service.storage.planning import read_bound

    for resource in ("task", "webhook_config", "event"):
        shape = listcost.Shape(resource, "plain&limit=10", {"limit": "10"})
        bound = read_bound(resource, 10)
        assert not listcost.Measured(shape, 10, True, 20, bound, ["query"], ()).over
        assert listcost.Measured(shape, 10, True, 20, bound + 1, ["query"], ()).over


def test_listcost_budget_of_events_adds_the_merge_slack_of_every_shard() -> None:
    from webhook_service.storage.planning import entries_bound, read_bound

    assert entries_bound("task", 10) == 11
    assert entries_bound("event", 10) >= 11 + EVENT_SHARDS * MERGE_SLACK
    assert read_bound("task", 10) == 2 * 11 + listcost.BOOKKEEPING_ITEMS  # each entry, then its item
    assert read_bound("event", 10) == 3 * entries_bound("event", 10) + listcost.BOOKKEEPING_ITEMS  # two items each


def test_replica_refuses_a_request_it_cannot_answer_exactly() -> None:
    schema = table_schemas(template.load_template())["Table"]
    replica = ReadReplica("t", schema, [])
    with pytest.raises(NotImplementedError):
        replica.query(
            TableName="t",
            KeyConditionExpression="PK = :p",
            FilterExpression="a = :v OR b = :v",
            ExpressionAttributeValues={":p": s("x"), ":v": s("y")},
        )
    with pytest.raises(NotImplementedError):
        replica.put_item(TableName="t", Item={})


def test_the_benchmarks_import_nothing_from_the_tests() -> None:
    """bench/ stands alone: what it shares with the tests lives in devstack (receiver, aws)."""
    bench = Path(__file__).resolve().parents[2] / "bench"
    imported = {
        (path.name, name)
        for path in sorted(bench.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }
    assert len({name for name, _ in imported}) >= 5
    assert sorted(item for item in imported if item[1] == "tests" or item[1].startswith("tests.")) == []


def test_capacity_families_name_the_shards_an_event_id_spreads_over() -> None:
    assert capacity.family(TABLE, "ORG#o") == ("ORG#o", 1)
    assert capacity.family(TABLE, "EVENT#o#e") == ("EVENT#o#<id>", None)
    assert capacity.family("ByType", "o#event#07") == ("o#event#<nn>", EVENT_SHARDS)
    assert capacity.family("ByState", "o#event#state=pending#31") == ("o#event#state=pending#<nn>", EVENT_SHARDS)
    assert capacity.family("ByType", "o#task") == ("o#task", 1)
    assert capacity.family("ByOpen", "open#5") == ("open#<n>", OPEN_SHARDS)
    assert capacity.family("ByRelated", "o#attempt#event=e") == ("o#attempt#event=<id>", None)


def test_capacity_one_partition_allows_its_limit_over_its_units() -> None:
    writes_bind = capacity.PartitionLoad(TABLE, "ORG#o", write_units=4.0, read_units=6.0)
    reads_bind = capacity.PartitionLoad(TABLE, "ORG#o", write_units=0.5, read_units=6.0)

    assert (writes_bind.rate, writes_bind.bound_by) == (capacity.PARTITION_WRITE_UNITS / 4.0, "writes")
    assert (reads_bind.rate, reads_bind.bound_by) == (capacity.PARTITION_READ_UNITS / 6.0, "reads")
