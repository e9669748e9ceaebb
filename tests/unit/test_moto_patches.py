"""devstack.moto_patches changes how fast moto's DynamoDB answers, never what it answers:
the same requests give the same answers, errors and table contents with and without it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from devstack import moto_patches

REGION = "us-east-1"
TABLE = "patched"  # deleted again on leaving fresh_dynamodb (the package's moto may be running)


@contextmanager
def fresh_dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto in-process with one new, empty table shaped like the service's (PK/SK and a GSI)."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("PK", "SK", "TypePK", "CreatedSK")
            ],
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "ByType",
                    "KeySchema": [
                        {"AttributeName": "TypePK", "KeyType": "HASH"},
                        {"AttributeName": "CreatedSK", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        try:
            yield client
        finally:
            client.delete_table(TableName=TABLE)


@pytest.fixture(autouse=True)
def shipped_moto() -> Iterator[None]:
    """Each test starts from moto as it ships and leaves the patches as it found them (the
    unit tests' conftest applies them to every other test)."""
    was_applied = moto_patches.applied()
    moto_patches.remove()
    yield
    moto_patches.remove()
    if was_applied:
        assert moto_patches.apply()


@pytest.fixture
def patched() -> Iterator[None]:
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    shipped = (DynamoType.__eq__, Table.all_items)
    assert moto_patches.apply()
    assert (DynamoType.__eq__, Table.all_items) != shipped
    yield
    moto_patches.remove()
    assert (DynamoType.__eq__, Table.all_items) == shipped  # moto is as it shipped again
    assert "__deepcopy__" not in vars(Table)


def item(pk: str, sk: str, **attrs: str) -> dict[str, Any]:
    return {
        "PK": {"S": pk},
        "SK": {"S": sk},
        "TypePK": {"S": f"{pk}#type"},
        "CreatedSK": {"S": sk[::-1]},
        **{k: {"S": v} for k, v in attrs.items()},
    }


def table_now() -> Any:
    return dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].tables[TABLE]


def contents(client: Any) -> list[dict[str, Any]]:
    found = client.scan(TableName=TABLE)["Items"]
    return sorted(found, key=lambda i: (i["PK"]["S"], i["SK"]["S"]))


def set_state(key: dict[str, Any], state: str) -> dict[str, Any]:
    """A transaction's Update action that sets one item's state."""
    return {
        "Update": {
            "TableName": TABLE,
            "Key": key,
            "UpdateExpression": "SET #s = :v",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": {":v": {"S": state}},
        }
    }


def cancel_reasons(client: Any, actions: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(ClientError) as caught:
        client.transact_write_items(TransactItems=actions)
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    return [r.get("Code", "None") for r in caught.value.response["CancellationReasons"]]


def scenario(client: Any) -> list[Any]:
    """Writes, transactions that pass and fail, reads of every kind (numbers, maps, lists,
    booleans, nulls and bytes among them), and queries; everything observed on the way."""
    seen: list[Any] = []
    for n in range(30):
        client.put_item(TableName=TABLE, Item=item(f"org#{n % 3}", f"cfg#{n:03d}", state="new"))
    a = {"PK": {"S": "org#0"}, "SK": {"S": "cfg#000"}}
    b = {"PK": {"S": "org#1"}, "SK": {"S": "cfg#001"}}

    client.transact_write_items(
        TransactItems=[
            set_state(a, "valid"),
            {"Put": {"TableName": TABLE, "Item": item("org#0", "task#new", state="pending")}},
            {"Delete": {"TableName": TABLE, "Key": b}},
        ]
    )
    seen.append(contents(client))

    seen.append(
        cancel_reasons(
            client,
            [
                set_state(a, "invalid"),
                {"Put": {"TableName": TABLE, "Item": item("org#2", "task#never", state="pending")}},
                {"Delete": {"TableName": TABLE, "Key": {"PK": {"S": "org#0"}, "SK": {"S": "task#new"}}}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": {"PK": {"S": "org#2"}, "SK": {"S": "cfg#002"}},
                        "ConditionExpression": "#s = :v",
                        "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": {":v": {"S": "deactivated"}},
                    }
                },
            ],
        )
    )
    seen.append(contents(client))

    rich = {
        **item("org#0", "rich"),
        "n": {"N": "12.50"},
        "m": {"M": {"flag": {"BOOL": True}, "none": {"NULL": True}, "list": {"L": [{"S": "x"}, {"N": "3"}]}}},
        "bytes": {"B": b"\x00\xff"},
    }
    client.put_item(TableName=TABLE, Item=rich)
    seen.append(client.get_item(TableName=TABLE, Key={"PK": {"S": "org#0"}, "SK": {"S": "rich"}})["Item"])
    seen.append(client.get_item(TableName=TABLE, Key={"PK": {"S": "org#9"}, "SK": {"S": "none"}}).get("Item"))
    seen.append(
        client.update_item(
            TableName=TABLE,
            Key=a,
            UpdateExpression="SET #s = :v ADD #c :one",
            ExpressionAttributeNames={"#s": "state", "#c": "counter"},
            ExpressionAttributeValues={":v": {"S": "checked"}, ":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )["Attributes"]
    )
    batch = client.batch_get_item(
        RequestItems={TABLE: {"Keys": [a, {"PK": {"S": "org#2"}, "SK": {"S": "cfg#002"}}], "ConsistentRead": True}}
    )
    seen.append(sorted(batch["Responses"][TABLE], key=lambda i: i["SK"]["S"]))
    seen.append(
        client.query(
            TableName=TABLE,
            KeyConditionExpression="PK = :p",
            ExpressionAttributeValues={":p": {"S": "org#0"}},
            Select="COUNT",
        )["Count"]
    )
    page = client.query(
        TableName=TABLE, KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": "org#1"}}, Limit=2
    )
    seen.append((page["Items"], page["LastEvaluatedKey"]))
    for pk in ("org#0", "org#1", "org#2"):
        seen.append(
            client.query(
                TableName=TABLE, KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": pk}}
            )["Items"]
        )
        seen.append(
            client.query(
                TableName=TABLE,
                IndexName="ByType",
                KeyConditionExpression="TypePK = :p",
                ExpressionAttributeValues={":p": {"S": f"{pk}#type"}},
                ScanIndexForward=False,
                Limit=4,
            )["Items"]
        )
    return seen


def test_the_same_requests_give_the_same_answers_with_and_without_the_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_dynamodb(monkeypatch) as client:
        plain = scenario(client)
    assert moto_patches.apply()
    try:
        with fresh_dynamodb(monkeypatch) as client:
            patched = scenario(client)
    finally:
        moto_patches.remove()

    assert patched == plain
    after_commit, reasons, after_cancel = plain[0], plain[1], plain[2]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    assert after_cancel == after_commit  # the cancelled transaction left nothing behind
    keys = {(i["PK"]["S"], i["SK"]["S"]): i for i in after_commit}
    assert keys[("org#0", "cfg#000")]["state"] == {"S": "valid"}
    assert ("org#0", "task#new") in keys
    assert ("org#1", "cfg#001") not in keys
    assert ("org#2", "task#never") not in keys


@pytest.mark.usefixtures("patched")
def test_a_cancelled_transaction_copies_only_the_items_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_dynamodb(monkeypatch) as client:
        for n in range(20):
            client.put_item(TableName=TABLE, Item=item("org#0", f"cfg#{n:03d}", state="new"))
        table = table_now()
        before = {k: v for bucket in table.items.values() for k, v in bucket.items()}

        reasons = cancel_reasons(
            client,
            [
                set_state({"PK": {"S": "org#0"}, "SK": {"S": "cfg#000"}}, "valid"),
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": item("org#0", "cfg#001"),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
            ],
        )

        assert reasons == ["None", "ConditionalCheckFailed"]
        assert table_now() is table  # the table was not swapped for a copy
        after = {k: v for bucket in table.items.values() for k, v in bucket.items()}
        assert after.keys() == before.keys()
        untouched = [k for k in before if k.value not in ("cfg#000", "cfg#001")]  # named: backed up
        assert all(after[k] is before[k] for k in untouched)  # the rest was never copied
        assert client.get_item(TableName=TABLE, Key={"PK": {"S": "org#0"}, "SK": {"S": "cfg#000"}})["Item"][
            "state"
        ] == {"S": "new"}


@pytest.mark.usefixtures("patched")
def test_other_deep_copies_of_a_table_stay_deep(monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_dynamodb(monkeypatch) as client:
        client.put_item(TableName=TABLE, Item=item("org#0", "cfg#000", state="new"))
        table = table_now()
        duplicate = copy.deepcopy(table)

        assert duplicate is not table
        original_item = table.get_item(*table_key("org#0", "cfg#000"))
        copied_item = duplicate.get_item(*table_key("org#0", "cfg#000"))
        assert copied_item is not original_item
        assert copied_item.to_json() == original_item.to_json()


def table_key(pk: str, sk: str) -> tuple[Any, Any]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    return DynamoType({"S": pk}), DynamoType({"S": sk})


@contextmanager
def answers_recorded(into: list[Any]) -> Iterator[None]:
    """Record the (status, headers, body) moto's DynamoDB answers are made of."""
    from moto.dynamodb.responses import DynamoResult

    execute = DynamoResult.execute_result
    had_own = "execute_result" in vars(DynamoResult)

    def execute_result(self: Any, context: Any) -> Any:
        status, headers, body = execute(self, context)
        into.append((status, dict(headers), body))  # moto adds the request's id and date afterwards
        return status, headers, body

    # A method replaced on moto's class for the span of the test (setattr: mypy rightly
    # refuses a plain assignment to a method, and replacing it is the point here).
    setattr(DynamoResult, "execute_result", execute_result)  # noqa: B010
    try:
        yield
    finally:
        if had_own:
            setattr(DynamoResult, "execute_result", execute)  # noqa: B010
        else:
            del DynamoResult.execute_result


def test_plain_json_answers_are_the_json_moto_would_write(monkeypatch: pytest.MonkeyPatch) -> None:
    shipped: list[Any] = []
    patched: list[Any] = []
    with fresh_dynamodb(monkeypatch) as client, answers_recorded(shipped):
        scenario(client)
    assert moto_patches.apply()
    try:
        with fresh_dynamodb(monkeypatch) as client, answers_recorded(patched):
            scenario(client)
    finally:
        moto_patches.remove()

    assert len(patched) == len(shipped) > 10
    for mine, theirs in zip(patched, shipped, strict=True):
        assert mine[:2] == theirs[:2]  # status and headers
        assert json.loads(mine[2]) == json.loads(theirs[2])  # the same JSON (its keys in another order)
