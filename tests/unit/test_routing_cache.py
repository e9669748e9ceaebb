"""The routing cache (storage.routing): routing items read once per process per few seconds,
forgotten by any write this process makes to an organisation's partition, read again when
they are older than the cache's seconds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest

from tests.unit.conftest import REGION
from webhook_service import admin
from webhook_service.storage import Store, marshal, org_pk, routing
from webhook_service.storage.keys import ORGANISATION_SK

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


class KeysRead:
    """Wraps a DynamoDB client; counts the keys each BatchGetItem asks for."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.keys = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.keys += sum(len(r["Keys"]) for r in kwargs["RequestItems"].values())
        return self._client.batch_get_item(**kwargs)


def counted(store: Store, seconds: float = 5.0) -> tuple[Store, KeysRead]:
    client = KeysRead(store.client)
    return Store(store.table_name, cast("DynamoDBClient", client), routing_cache_seconds=seconds), client


def test_routing_reads_the_organisation_and_key_once_within_the_window(store: Store, organisation: str) -> None:
    key = admin.create_key(store, organisation)[0]["id"]
    cached, client = counted(store)

    for _ in range(5):
        _, key_item, organisation_item = cached.get_routing(organisation, key)
        assert key_item is not None
        assert organisation_item is not None

    assert client.keys == 2


def test_the_event_is_read_each_time_even_when_its_routing_is_kept(store: Store, organisation: str) -> None:
    cached, client = counted(store)
    cached.get_routing(organisation, None)
    client.keys = 0

    cached.get_routing(organisation, None, event_id="00000000-0000-4000-8000-000000000000")

    assert client.keys == 1  # the event only


def test_a_write_to_the_organisation_through_any_store_is_seen_at_once(store: Store, organisation: str) -> None:
    cached, _ = counted(store)
    kept = cached.get_routing(organisation, None)[2]
    assert kept is not None
    assert kept.webhook_config_default is None
    other = Store(store.table_name, boto3.client("dynamodb", region_name=REGION))  # another store, its own client

    other.client.update_item(
        TableName=store.table_name,
        Key=marshal({"PK": org_pk(organisation), "SK": ORGANISATION_SK}),
        UpdateExpression="SET webhook_config_default = :c",
        ExpressionAttributeValues=marshal({":c": "11111111-1111-4111-8111-111111111111"}),
    )

    organisation_item = cached.get_routing(organisation, None)[2]
    assert organisation_item is not None
    assert organisation_item.webhook_config_default == "11111111-1111-4111-8111-111111111111"


def test_a_change_this_process_did_not_make_is_seen_once_the_window_ends(
    store: Store, organisation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    # The cache's clock, moved by hand: with the real one, a loaded machine took longer than
    # a short window between the test's two reads and found the change already.
    monkeypatch.setattr(routing, "time", SimpleNamespace(monotonic=lambda: now[0]))
    cached, _ = counted(store, seconds=5.0)
    assert cached.get_routing(organisation, None)[2] is not None
    elsewhere = boto3.client("dynamodb", region_name=REGION)  # not watched: another process's writes
    elsewhere.update_item(
        TableName=store.table_name,
        Key=marshal({"PK": org_pk(organisation), "SK": ORGANISATION_SK}),
        UpdateExpression="SET webhook_config_default = :c",
        ExpressionAttributeValues=marshal({":c": "22222222-2222-4222-8222-222222222222"}),
    )

    now[0] += 4.9
    stale = cached.get_routing(organisation, None)[2]
    assert stale is not None
    assert stale.webhook_config_default is None  # kept: within the window
    now[0] += 0.1  # 5 s old: the window has ended
    fresh = cached.get_routing(organisation, None)[2]
    assert fresh is not None
    assert fresh.webhook_config_default == "22222222-2222-4222-8222-222222222222"


def test_what_is_missing_is_not_kept(store: Store) -> None:
    cached, client = counted(store)
    unknown = "33333333-3333-4333-8333-333333333333"

    assert cached.get_routing(unknown, None)[2] is None
    assert cached.get_routing(unknown, None)[2] is None

    assert client.keys == 2


def test_no_window_reads_every_time(store: Store, organisation: str) -> None:
    cached, client = counted(store, seconds=0)

    cached.get_routing(organisation, None)
    cached.get_routing(organisation, None)

    assert client.keys == 2


def test_writes_to_an_event_partition_keep_the_cache(store: Store, organisation: str) -> None:
    cached, client = counted(store)
    cached.get_routing(organisation, None)
    client.keys = 0
    store.client.put_item(TableName=store.table_name, Item=marshal({"PK": f"EVENT#{organisation}#x", "SK": "EVENT"}))

    cached.get_routing(organisation, None)

    assert client.keys == 0
