"""The routing cache (storage.routing): routing items read once per store per few seconds,
forgotten by any write the store's own table makes to an organisation's partition, read again
when they are older than the cache's seconds (another process's writes)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest

from tests.unit.conftest import REGION
from webhook_service import admin
from webhook_service.storage import routing
from webhook_service.storage.codec import marshal
from webhook_service.storage.keys import ORGANISATION_SK, org_pk
from webhook_service.storage.store import Store

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
    client = KeysRead(store.table.client)
    return Store(store.table.name, cast("DynamoDBClient", client), routing_cache_seconds=seconds), client


def test_routing_reads_the_organisation_and_key_once_within_the_window(store: Store, organisation: str) -> None:
    key = admin.create_key(store.organisations, organisation)[0]["id"]
    cached, client = counted(store)

    for _ in range(5):
        _, key_item, organisation_item = cached.routing.read(organisation, key)
        assert key_item is not None
        assert organisation_item is not None

    assert client.keys == 2


def test_the_event_is_read_each_time_even_when_its_routing_is_kept(store: Store, organisation: str) -> None:
    cached, client = counted(store)
    cached.routing.read(organisation, None)
    client.keys = 0

    cached.routing.read(organisation, None, event_id="00000000-0000-4000-8000-000000000000")

    assert client.keys == 2  # the event only: what was published, and its state


def test_a_write_through_the_stores_own_table_is_seen_at_once(store: Store, organisation: str) -> None:
    cached, _ = counted(store)
    kept = cached.routing.read(organisation, None)[2]
    assert kept is not None
    assert kept.webhook_config_default is None

    cached.table.update(
        {"PK": org_pk(organisation), "SK": ORGANISATION_SK},
        "SET webhook_config_default = :c",
        ExpressionAttributeValues={":c": "11111111-1111-4111-8111-111111111111"},
    )

    organisation_item = cached.routing.read(organisation, None)[2]
    assert organisation_item is not None
    assert organisation_item.webhook_config_default == "11111111-1111-4111-8111-111111111111"


def test_a_transaction_that_writes_the_organisations_partition_is_seen_at_once(store: Store, organisation: str) -> None:
    cached, _ = counted(store)
    key = admin.create_key(store.organisations, organisation)[0]["id"]
    assert cached.routing.read(organisation, key)[1] is not None

    cached.organisations.deactivate_key(organisation, key)  # a transaction of two updates

    key_item = cached.routing.read(organisation, key)[1]
    assert key_item is not None
    assert key_item.state == "deactivated"


def test_a_change_this_process_did_not_make_is_seen_once_the_window_ends(
    store: Store, organisation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    # The cache's clock, moved by hand: with the real one, a loaded machine took longer than
    # a short window between the test's two reads and found the change already.
    monkeypatch.setattr(routing, "time", SimpleNamespace(monotonic=lambda: now[0]))
    cached, _ = counted(store, seconds=5.0)
    assert cached.routing.read(organisation, None)[2] is not None
    elsewhere = boto3.client("dynamodb", region_name=REGION)  # not watched: another process's writes
    elsewhere.update_item(
        TableName=store.table.name,
        Key=marshal({"PK": org_pk(organisation), "SK": ORGANISATION_SK}),
        UpdateExpression="SET webhook_config_default = :c",
        ExpressionAttributeValues=marshal({":c": "22222222-2222-4222-8222-222222222222"}),
    )

    now[0] += 4.9
    stale = cached.routing.read(organisation, None)[2]
    assert stale is not None
    assert stale.webhook_config_default is None  # kept: within the window
    now[0] += 0.1  # 5 s old: the window has ended
    fresh = cached.routing.read(organisation, None)[2]
    assert fresh is not None
    assert fresh.webhook_config_default == "22222222-2222-4222-8222-222222222222"


def test_what_is_missing_is_not_kept(store: Store) -> None:
    cached, client = counted(store)
    unknown = "33333333-3333-4333-8333-333333333333"

    assert cached.routing.read(unknown, None)[2] is None
    assert cached.routing.read(unknown, None)[2] is None

    assert client.keys == 2


def test_no_window_reads_every_time(store: Store, organisation: str) -> None:
    cached, client = counted(store, seconds=0)

    cached.routing.read(organisation, None)
    cached.routing.read(organisation, None)

    assert client.keys == 2


def test_writes_to_an_event_partition_keep_the_cache(store: Store, organisation: str) -> None:
    cached, client = counted(store)
    cached.routing.read(organisation, None)
    client.keys = 0
    cached.table.put({"PK": f"EVENT#{organisation}#x", "SK": "EVENT"}, "attribute_not_exists(PK)")

    cached.routing.read(organisation, None)

    assert client.keys == 0
