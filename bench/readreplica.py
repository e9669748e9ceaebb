"""A read-only stand-in for a DynamoDB client: it answers GetItem, BatchGetItem and Query
from a snapshot of a table's items, as DynamoDB does, with the table's key schema and
indexes from the template (`bench.dynamocost.table_schemas`).

Why: moto answers a Query by reading, sorting and copying the whole table, and serialises
every item it returns slowly; at the 100,000 items of `bench/listcost.py` a page took
seconds to minutes. Here an index partition is a sorted list, so a page costs what it
reads. What a Query answers (items, `Count`, `ScannedCount`, `LastEvaluatedKey`) is
checked against moto's answers for every page shape of `bench/listcost.py` by
tests/unit/test_bench.py, and again by the benchmark itself at a small size.

What it understands, and refuses the rest (`NotImplementedError`), so that a request it
cannot answer exactly is never answered wrongly:
- key conditions `k = v`, and on the sort key `=`, `<`, `<=`, `>`, `>=`, `BETWEEN`,
  `begins_with`;
- filters made of clauses joined by AND: `a = v`, `attribute_exists(a)`,
  `attribute_not_exists(a)`;
- `Limit`, `ExclusiveStartKey`, `ScanIndexForward`, `Select=COUNT`, and the 1 MB page
  (sizes by DynamoDB's rules, `bench.dynamocost.item_size`).
As moto does, a page that stops at its `Limit` has a `LastEvaluatedKey` only when more
items of the partition follow (DynamoDB may return one even when none do: one more,
empty, request). The 1 MB page is measured by DynamoDB's size rules where moto uses its
own, so at that boundary the two may split pages differently; the items read are the same.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bench.dynamocost import IndexSchema, RawItem, TableSchema, index_entry, item_size

PAGE_BYTES = 1024 * 1024
_OPERAND = r"(#?[A-Za-z0-9_]+|:[A-Za-z0-9_]+)"


def _sortable(value: dict[str, Any]) -> Any:
    ((kind, content),) = value.items()
    if kind == "N":
        return Decimal(content)
    if kind == "S":
        return content.encode("utf-8")  # DynamoDB orders strings by their UTF-8 bytes
    if kind == "B":
        return bytes(content)
    raise NotImplementedError(f"a key of type {kind}")


class _Partitioned:
    """One table or index: partition key value -> items sorted by (sort key, table keys)."""

    def __init__(self, hash_key: str, range_key: str | None, table: TableSchema) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        self.order = ([range_key] if range_key else []) + [k for k in table.key_names if k != range_key]
        self.partitions: dict[Any, list[tuple[tuple[Any, ...], RawItem]]] = {}

    def position(self, item: RawItem) -> tuple[Any, ...]:
        return tuple(_sortable(item[k]) for k in self.order)

    def add(self, item: RawItem) -> None:
        self.partitions.setdefault(_sortable(item[self.hash_key]), []).append((self.position(item), item))

    def seal(self) -> None:
        for rows in self.partitions.values():
            rows.sort(key=lambda row: row[0])


class ReadReplica:
    """Answers a list's reads from `items`, the table's contents in DynamoDB JSON."""

    def __init__(self, table_name: str, schema: TableSchema, items: list[RawItem]) -> None:
        self.table_name = table_name
        self.schema = schema
        self._by_key = {self._key(item): item for item in items}
        self._sizes: dict[int, int] = {}  # id of a stored or projected item -> its size
        self._table = _Partitioned(schema.hash_key, schema.range_key, schema)
        self._indexes: dict[str, tuple[IndexSchema, _Partitioned]] = {}
        for index in schema.indexes:
            self._indexes[index.name] = (index, _Partitioned(index.hash_key, index.range_key, schema))
        for item in self._by_key.values():
            self._table.add(item)
            self._sizes[id(item)] = item_size(item)
            for index, rows in self._indexes.values():
                entry = index_entry(index, schema, item)
                if entry is not None:
                    rows.add(entry)
                    if entry is not item:  # a projection smaller than the whole item
                        self._sizes[id(entry)] = item_size(entry)
        self._table.seal()
        for _, rows in self._indexes.values():
            rows.seal()

    def _key(self, item: RawItem) -> tuple[Any, ...]:
        return tuple(_sortable(item[k]) for k in self.schema.key_names)

    def _check_table(self, name: str) -> None:
        if name != self.table_name:
            raise NotImplementedError(f"table {name}")

    # -- reads -------------------------------------------------------------------------------

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        self._check_table(kwargs["TableName"])
        if "ProjectionExpression" in kwargs:
            raise NotImplementedError("ProjectionExpression")
        item = self._by_key.get(self._key(kwargs["Key"]))
        return {"Item": dict(item)} if item is not None else {}

    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]:
        responses: dict[str, list[RawItem]] = {}
        for table, request in kwargs["RequestItems"].items():
            self._check_table(table)
            if "ProjectionExpression" in request:
                raise NotImplementedError("ProjectionExpression")
            found = [self._by_key.get(self._key(key)) for key in request["Keys"]]
            responses[table] = [dict(item) for item in found if item is not None]
        return {"Responses": responses, "UnprocessedKeys": {}}

    def query(self, **kwargs: Any) -> dict[str, Any]:
        self._check_table(kwargs["TableName"])
        for unsupported in ("ProjectionExpression", "KeyConditions", "QueryFilter", "AttributesToGet"):
            if unsupported in kwargs:
                raise NotImplementedError(unsupported)
        names = kwargs.get("ExpressionAttributeNames", {})
        values = kwargs.get("ExpressionAttributeValues", {})
        index_name = kwargs.get("IndexName")
        rows = self._table if index_name is None else self._indexes[index_name][1]
        partition, accept = _key_condition(kwargs["KeyConditionExpression"], names, values, rows)
        keep = _filter(kwargs.get("FilterExpression"), names, values)
        candidates = rows.partitions.get(partition, [])
        forward = kwargs.get("ScanIndexForward", True)
        start = kwargs.get("ExclusiveStartKey")
        if forward:
            begin = bisect.bisect_right(candidates, rows.position(start), key=lambda row: row[0]) if start else 0
            ordered = (candidates[i] for i in range(begin, len(candidates)))
        else:
            end = (
                bisect.bisect_left(candidates, rows.position(start), key=lambda row: row[0])
                if start
                else len(candidates)
            )
            ordered = (candidates[i] for i in range(end - 1, -1, -1))
        limit = kwargs.get("Limit")
        evaluated: list[RawItem] = []
        size = 0
        last: RawItem | None = None
        for _, item in ordered:
            # As moto does: the page ends when the next item of the partition would pass
            # the limit, before that item is tested against the sort key condition.
            item_bytes = self._sizes[id(item)]
            if (limit is not None and len(evaluated) == limit) or size + item_bytes > PAGE_BYTES:
                last = evaluated[-1] if evaluated else None
                break
            if not accept(item):
                continue
            evaluated.append(item)
            size += item_bytes
        returned = [dict(item) for item in evaluated if keep(item)]
        response: dict[str, Any] = {"Count": len(returned), "ScannedCount": len(evaluated)}
        if kwargs.get("Select") != "COUNT":
            response["Items"] = returned
        if last is not None:
            key_names = set(self.schema.key_names) | {rows.hash_key} | ({rows.range_key} if rows.range_key else set())
            response["LastEvaluatedKey"] = {k: v for k, v in last.items() if k in key_names}
        return response

    def __getattr__(self, name: str) -> Any:
        raise UnansweredError(f"the read replica answers reads only, not {name}")


class UnansweredError(NotImplementedError, AttributeError):
    """What the replica does not answer: not implemented, and absent to `getattr` with a
    default (the store looks for a client's event hooks that way)."""


def _resolve(token: str, names: dict[str, str], values: dict[str, Any]) -> tuple[str, Any]:
    if token.startswith(":"):
        return "value", values[token]
    return "name", names.get(token, token)


def _key_condition(expression: str, names: dict[str, str], values: dict[str, Any], rows: _Partitioned) -> Any:
    """The partition to read and a test of the sort key condition."""
    parts = re.split(r"\s+AND\s+", expression.strip(), flags=re.IGNORECASE)
    partition = None
    tests: list[tuple[str, Callable[[Any], bool]]] = []
    index = 0
    while index < len(parts):
        part = parts[index].strip()
        between = re.fullmatch(rf"{_OPERAND}\s+BETWEEN\s+{_OPERAND}", part, flags=re.IGNORECASE)
        if between:
            _, attribute = _resolve(between.group(1), names, values)
            low = _sortable(_resolve(between.group(2), names, values)[1])
            high = _sortable(_resolve(parts[index + 1].strip(), names, values)[1])
            tests.append((attribute, _between(low, high)))
            index += 2
            continue
        begins = re.fullmatch(rf"begins_with\(\s*{_OPERAND}\s*,\s*{_OPERAND}\s*\)", part, flags=re.IGNORECASE)
        if begins:
            _, attribute = _resolve(begins.group(1), names, values)
            prefix = _sortable(_resolve(begins.group(2), names, values)[1])
            tests.append((attribute, _begins_with(prefix)))
            index += 1
            continue
        compared = re.fullmatch(rf"{_OPERAND}\s*(=|<=|>=|<|>)\s*{_OPERAND}", part)
        if not compared:
            raise NotImplementedError(f"key condition {expression!r}")
        _, attribute = _resolve(compared.group(1), names, values)
        operand = _sortable(_resolve(compared.group(3), names, values)[1])
        operator = compared.group(2)
        if attribute == rows.hash_key and operator == "=":
            partition = operand
        else:
            tests.append((attribute, _COMPARE[operator](operand)))
        index += 1
    if partition is None:
        raise NotImplementedError(f"key condition without the partition key: {expression!r}")
    for attribute, _ in tests:
        if attribute != rows.range_key:
            raise NotImplementedError(f"key condition on {attribute}, not the sort key")

    def accept(item: RawItem) -> bool:
        return all(test(_sortable(item[attribute])) for attribute, test in tests)

    return partition, accept


_COMPARE: dict[str, Any] = {
    "=": lambda o: lambda v: v == o,
    "<": lambda o: lambda v: v < o,
    "<=": lambda o: lambda v: v <= o,
    ">": lambda o: lambda v: v > o,
    ">=": lambda o: lambda v: v >= o,
}


def _comparable(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("S", "N", "B"):
        return (next(iter(value)), _sortable(value))
    return value


def _between(low: Any, high: Any) -> Callable[[Any], bool]:
    return lambda value: bool(low <= value <= high)


def _begins_with(prefix: Any) -> Callable[[Any], bool]:
    return lambda value: bool(value[: len(prefix)] == prefix)


def _exists(attribute: str, wanted: bool) -> Callable[[RawItem], bool]:
    return lambda item: (attribute in item) == wanted


def _equals(attribute: str, wanted: Any) -> Callable[[RawItem], bool]:
    return lambda item: attribute in item and _comparable(item[attribute]) == wanted


def _filter(expression: str | None, names: dict[str, str], values: dict[str, Any]) -> Any:
    if not expression:
        return lambda item: True
    tests: list[Callable[[RawItem], bool]] = []
    for part in re.split(r"\s+AND\s+", expression.strip(), flags=re.IGNORECASE):
        part = part.strip()
        exists = re.fullmatch(rf"(attribute_exists|attribute_not_exists)\(\s*{_OPERAND}\s*\)", part)
        if exists:
            _, attribute = _resolve(exists.group(2), names, values)
            wanted = exists.group(1) == "attribute_exists"
            tests.append(_exists(attribute, wanted))
            continue
        compared = re.fullmatch(rf"{_OPERAND}\s*=\s*{_OPERAND}", part)
        if not compared:
            raise NotImplementedError(f"filter {expression!r}")
        _, attribute = _resolve(compared.group(1), names, values)
        wanted_value = _comparable(_resolve(compared.group(2), names, values)[1])
        tests.append(_equals(attribute, wanted_value))
    return lambda item: all(test(item) for test in tests)
