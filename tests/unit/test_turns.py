"""The local stack's DynamoDB calls take turns by organisation (devstack.turns): one
organisation's backlog of calls does not queue another's behind it, as DynamoDB serves each
partition on its own."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from devstack.turns import OTHER, PartitionTurns, partition_of
from webhook_service.storage.codec import marshal
from webhook_service.storage.keys import item_key, rate_key, token_key, type_pk

A = "0b1e7f4c-3c1a-4c55-9a8f-2a6b0d6f0a11"
B = "9d0c5a2e-5b7e-4f0b-8c1d-7e3f9a2b4c22"
WAIT_SECONDS = 10.0


def test_partition_of_a_table_key_is_its_organisation() -> None:
    body = json.dumps({"TableName": "t", "Key": marshal(item_key(A, "event", B))})

    assert partition_of(body.encode()) == A


def test_partition_of_an_index_query_is_its_organisation() -> None:
    body = json.dumps(
        {
            "IndexName": "ByType",
            "ExpressionAttributeValues": marshal({":pk": type_pk(B, "webhook_config")}),
            "Limit": 11,
        }
    )

    assert partition_of(body.encode()) == B


def test_partition_of_an_organisations_rate_is_its_organisation() -> None:
    body = json.dumps({"TableName": "t", "Key": marshal(rate_key(A, "api")), "UpdateExpression": "SET tat = :next"})

    assert partition_of(body.encode()) == A


def test_partition_of_a_token_lookup_is_shared() -> None:
    body = json.dumps({"Key": marshal(token_key("ab" * 32))})

    assert partition_of(body.encode()) == OTHER


def waiting_is(turns: PartitionTurns, count: int) -> Callable[[], bool]:
    return lambda: turns.waiting() == count


def wait_until(condition: Callable[[], object]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "still waiting"
        time.sleep(0.01)


def test_waiting_calls_take_turns_round_robin_across_partitions() -> None:
    turns = PartitionTurns()
    order: list[str] = []
    threads = []

    def call(partition: str, name: str) -> None:
        with turns.turn(partition):
            order.append(name)

    with turns.turn(OTHER):  # busy: everything below waits, queued in this order
        for partition, name in [(A, "a1"), (A, "a2"), (A, "a3"), (B, "b1"), (A, "a4"), (B, "b2")]:
            thread = threading.Thread(target=call, args=(partition, name))
            thread.start()
            threads.append(thread)
            wait_until(waiting_is(turns, len(threads)))
    for thread in threads:
        thread.join(timeout=WAIT_SECONDS)

    assert order == ["a1", "b1", "a2", "b2", "a3", "a4"]


def test_one_call_at_a_time() -> None:
    turns = PartitionTurns()
    inside = 0
    most = 0
    guard = threading.Lock()

    def call(partition: str) -> None:
        nonlocal inside, most
        for _ in range(50):
            with turns.turn(partition):
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.0005)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=call, args=(p,)) for p in (A, B, OTHER, A, B)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT_SECONDS)

    assert most == 1
    assert turns.waiting() == 0
