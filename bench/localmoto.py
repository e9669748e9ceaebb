"""The local stack's DynamoDB as its table grows: a transaction, a Query of one partition and
a Query of a GSI, on moto as it ships and with devstack.moto_patches, measured alternately
on the same table (the template's) at each size. Prints the medians and plain/patched ratios.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from devstack import aws, moto_patches, template

SIZES = tuple(int(n) for n in os.environ.get("LOCALMOTO_SIZES", "1000,3000,6000").split(","))
ROUNDS = 7


def fill(client: Any, table: str, upto: int, have: int) -> int:
    for n in range(have, upto):
        organisation = f"org#{n % 50}"
        client.put_item(
            TableName=table,
            Item={
                "PK": {"S": organisation},
                "SK": {"S": f"config#{uuid.uuid4()}"},
                "TypePK": {"S": f"{organisation}#config"},
                "CreatedSK": {"S": f"2026-11-27T00:00:{n:06d}Z"},
                "url": {"S": "https://receiver.example/hooks/" + "a" * 60},
                "secret": {"S": "whsec_" + "b" * 43},
                "state": {"S": "valid"},
                "version": {"N": "3"},
            },
        )
    return upto


def operations(client: Any, table: str) -> dict[str, Callable[[], Any]]:
    def transaction() -> Any:
        return client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"PK": {"S": "bench"}, "SK": {"S": str(uuid.uuid4())}}}},
                {"Put": {"TableName": table, "Item": {"PK": {"S": "bench"}, "SK": {"S": str(uuid.uuid4())}}}},
            ]
        )

    def partition() -> Any:
        return client.query(
            TableName=table,
            KeyConditionExpression="PK = :p",
            ExpressionAttributeValues={":p": {"S": "org#7"}},
            Limit=26,
        )

    def index() -> Any:
        return client.query(
            TableName=table,
            IndexName="ByType",
            KeyConditionExpression="TypePK = :p",
            ExpressionAttributeValues={":p": {"S": "org#7#config"}},
            ScanIndexForward=False,
            Limit=26,
        )

    return {"transaction": transaction, "partition query": partition, "GSI query": index}


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> int:
    os.environ.pop("AWS_ENDPOINT_URL", None)
    credentials = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    for name, value in credentials.items():
        os.environ.setdefault(name, value)
    import boto3
    from moto import mock_aws

    print(f"local stack DynamoDB: moto as shipped vs devstack.moto_patches, median of {ROUNDS}, alternating")
    with mock_aws():
        stack = aws.deploy(template.load_template(), {"Stage": "dev", "AllowPrivateTargets": "false"})
        table = stack.refs["Table"]
        client = boto3.client("dynamodb")
        calls = operations(client, table)
        have = 0
        for size in SIZES:
            have = fill(client, table, size, have)
            samples: dict[tuple[str, bool], list[float]] = {}
            for _ in range(ROUNDS):
                for patched in (False, True):
                    if patched:
                        moto_patches.apply()
                    try:
                        for name, call in calls.items():
                            samples.setdefault((name, patched), []).append(timed(call))
                    finally:
                        moto_patches.remove()
            for name in calls:
                plain = statistics.median(samples[(name, False)])
                fast = statistics.median(samples[(name, True)])
                print(
                    f"  {size:>6} items  {name:<16} plain {plain * 1000:7.1f} ms  "
                    f"patched {fast * 1000:6.1f} ms  ratio {plain / fast:6.1f}x"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
