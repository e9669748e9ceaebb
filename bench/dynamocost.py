"""What DynamoDB requests cost, partition by partition: item sizes, capacity units, and a
client wrapper that records every request's units on each partition key value it touches,
on the table and on each of its global secondary indexes.

The key schema comes from the template (`table_schemas`), never from names written here,
so the recorder keeps working when the table's layout changes.

The rules (DynamoDB developer guide: item sizes and formats, capacity units, conditional
writes, global secondary indexes, transactions):

- **Item size**: the sum of attribute names and values. Strings and binaries: their bytes;
  numbers: 1 byte per two significant digits plus 1 (approximate, as documented); null and
  Boolean: 1 byte; lists and maps: 3 bytes plus 1 byte per element plus the elements (a map
  element's name counts); sets: the sum of their elements.
- **Writes**: 1 write unit per KiB of item, rounded up, at least 1. A put or update costs the
  larger of the item before and after; a delete the item deleted. A write whose condition
  fails still costs the size of the item that exists (1 unit when none does). In a
  transaction every table action costs twice; a `ConditionCheck` is charged as a
  transactional write of the item it checks, and a cancelled transaction as failed writes
  (assumptions: the guide says transactions cost twice, not how these two cases are split).
- **Index writes**: an index holds an item only when the item has the index's key
  attributes. A write that puts an item on an index costs one index write, one that takes
  it off costs one, one that changes its index key costs two (a delete and a put), one that
  changes only projected attributes costs one; sized by the projected entry (the whole item
  for `ALL`), at the standard rate also inside transactions (assumption, as above).
- **Reads**: 1 read unit per 4 KiB, rounded up, for a strongly consistent read; half for an
  eventually consistent one; twice for a transactional one. A Query or Scan is charged on
  the summed size of every item it evaluates (before any filter), rounded up once per
  request; GetItem and BatchGetItem per item, at least one 4 KiB block even when the item
  does not exist.

The wrapper reads each written item before the write, and after it unless the request or
its answer shows the new item (through the unwrapped client, unrecorded), so that index
writes follow from the real images rather than from parsing update expressions; it
replays each Query without its filter to see what the Query evaluated. It is for
single-threaded benchmarks: the images are exact only when nothing else writes meanwhile.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Attr = dict[str, Any]  # one DynamoDB JSON attribute value, e.g. {"S": "x"}
RawItem = dict[str, Attr]  # an item in DynamoDB JSON

WRITE_BLOCK = 1024
READ_BLOCK = 4096
TABLE = "table"  # the target name of the base table in charges (indexes use their own names)


# -- the key schema, from the template -------------------------------------------------------


@dataclass(frozen=True)
class IndexSchema:
    name: str
    hash_key: str
    range_key: str | None
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    included: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSchema:
    hash_key: str
    range_key: str | None
    indexes: tuple[IndexSchema, ...] = ()

    @property
    def key_names(self) -> tuple[str, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)


def _keys(key_schema: list[dict[str, str]]) -> tuple[str, str | None]:
    hash_key = next(k["AttributeName"] for k in key_schema if k["KeyType"] == "HASH")
    range_key = next((k["AttributeName"] for k in key_schema if k["KeyType"] == "RANGE"), None)
    return hash_key, range_key


def table_schemas(template: dict[str, Any]) -> dict[str, TableSchema]:
    """Every DynamoDB table of a CloudFormation/SAM template, by logical id, with its
    global secondary indexes (local secondary indexes share the table's partition key, so
    their writes land on the table's partitions; they are not modelled separately)."""
    schemas: dict[str, TableSchema] = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        if props.get("LocalSecondaryIndexes"):
            raise NotImplementedError("local secondary indexes are not modelled")
        hash_key, range_key = _keys(props["KeySchema"])
        indexes = []
        for index in props.get("GlobalSecondaryIndexes", []):
            index_hash, index_range = _keys(index["KeySchema"])
            projection = index.get("Projection", {})
            indexes.append(
                IndexSchema(
                    name=index["IndexName"],
                    hash_key=index_hash,
                    range_key=index_range,
                    projection=projection.get("ProjectionType", "ALL"),
                    included=tuple(projection.get("NonKeyAttributes", [])),
                )
            )
        schemas[logical_id] = TableSchema(hash_key=hash_key, range_key=range_key, indexes=tuple(indexes))
    return schemas


# -- sizes and units ---------------------------------------------------------------------------


def _number_size(text: str) -> int:
    digits = str(abs(Decimal(text))).replace(".", "").lstrip("0")
    if "E" in digits:  # Decimal wrote an exponent: count the mantissa's digits
        digits = digits.split("E", 1)[0]
    digits = digits.rstrip("0")
    return math.ceil(len(digits) / 2) + 1


def value_size(value: Attr) -> int:
    """The size of one attribute value (without its name)."""
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode("utf-8"))
    if kind == "N":
        return _number_size(content)
    if kind == "B":
        return len(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in content)
    if kind == "NS":
        return sum(_number_size(n) for n in content)
    if kind == "BS":
        return sum(len(b) for b in content)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in content)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + value_size(v) for k, v in content.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: RawItem) -> int:
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_BLOCK))


def read_units(size: int, consistent: bool) -> float:
    blocks = max(1, math.ceil(size / READ_BLOCK))
    return float(blocks) if consistent else blocks / 2


def _hash_value(value: Attr) -> str:
    ((_, content),) = value.items()
    return str(content)


def index_entry(index: IndexSchema, table: TableSchema, item: RawItem | None) -> RawItem | None:
    """The item as the index holds it, or None when the index does not hold it."""
    if item is None or index.hash_key not in item or (index.range_key and index.range_key not in item):
        return None
    if index.projection == "ALL":
        return item
    names = set(table.key_names) | {index.hash_key} | ({index.range_key} if index.range_key else set())
    if index.projection == "INCLUDE":
        names |= set(index.included)
    return {k: v for k, v in item.items() if k in names}


# -- charges -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Charge:
    """Units one request took on one partition key value of the table or of an index."""

    operation: str
    target: str  # TABLE, or an index name
    partition: str  # the partition key value
    kind: str  # "read" or "write"
    units: float


def failed_write_charges(
    schema: TableSchema, operation: str, key: RawItem, existing: RawItem | None, *, transactional: bool = False
) -> list[Charge]:
    """The charge of a write that changed nothing (its condition failed, or it deleted an
    item that was not there): the size of the item that exists, at least one unit; no
    index is written."""
    factor = 2 if transactional else 1
    size = item_size(existing) if existing is not None else 0
    return [Charge(operation, TABLE, _hash_value(key[schema.hash_key]), "write", factor * write_units(size))]


def write_charges(
    schema: TableSchema, operation: str, old: RawItem | None, new: RawItem | None, *, transactional: bool = False
) -> list[Charge]:
    """The charges of one item write that took effect, from the item before and after it
    (`old` None: a new item; `new` None: a delete)."""
    image = old if old is not None else new
    assert image is not None, "a write that took effect has an image"
    size = max(item_size(old) if old else 0, item_size(new) if new else 0)
    factor = 2 if transactional else 1
    charges = [Charge(operation, TABLE, _hash_value(image[schema.hash_key]), "write", factor * write_units(size))]
    for index in schema.indexes:
        before, after = index_entry(index, schema, old), index_entry(index, schema, new)
        if before is None and after is None:
            continue
        if before is None:
            assert after is not None
            charges.append(_index_write(operation, index, after, after))
        elif after is None:
            charges.append(_index_write(operation, index, before, before))
        elif _index_key(index, before) != _index_key(index, after):
            charges.append(_index_write(operation, index, before, before))
            charges.append(_index_write(operation, index, after, after))
        elif before != after:
            larger = before if item_size(before) > item_size(after) else after
            charges.append(_index_write(operation, index, after, larger))
    return charges


def _index_key(index: IndexSchema, entry: RawItem) -> tuple[Any, ...]:
    return (entry[index.hash_key], entry.get(index.range_key) if index.range_key else None)


def _index_write(operation: str, index: IndexSchema, entry: RawItem, sized: RawItem) -> Charge:
    return Charge(operation, index.name, _hash_value(entry[index.hash_key]), "write", write_units(item_size(sized)))


def read_charge(
    operation: str, target: str, partition: str, items: list[RawItem], *, consistent: bool, factor: int = 1
) -> Charge:
    """One read request's charge: `items` are the items it evaluated, sized together."""
    return Charge(operation, target, partition, "read", factor * read_units(sum(map(item_size, items)), consistent))


# -- the recording client ------------------------------------------------------------------------

_CONDITION_FAILED = "ConditionalCheckFailedException"
_CANCELLED = "TransactionCanceledException"
_NAME_OR_VALUE = r"[#:][A-Za-z0-9_]+"


class UnknownOperationError(AssertionError):
    """The code made a DynamoDB request this recorder cannot charge: teach it, do not skip it."""


@dataclass
class Recording:
    """What a recorder saw: every charge, and the requests by (phase, operation)."""

    charges: list[tuple[str, Charge]] = field(default_factory=list)  # (phase, charge)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)


class RecordingClient:
    """Wraps a DynamoDB client; every data request is passed on and charged.

    `tables` maps each physical table name to its schema. `phase` labels what follows
    (for example `publish`, `deliver`), so costs can be told apart by use case."""

    _READS = ("get_item", "batch_get_item", "transact_get_items", "query", "scan")
    _WRITES = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")
    _FREE = ("describe_table", "list_tables", "describe_time_to_live", "get_paginator", "meta", "exceptions")

    def __init__(self, client: Any, tables: dict[str, TableSchema]) -> None:
        self._client = client
        self._tables = tables
        self.phase = "-"
        self.recording = Recording()
        self._lock = threading.Lock()  # a merged list page reads its shards on several threads

    def __getattr__(self, name: str) -> Any:
        if name in self._FREE:
            return getattr(self._client, name)
        if name not in self._READS + self._WRITES:
            raise UnknownOperationError(f"no cost rule for DynamoDB {name}")
        method = getattr(self, f"_{name}")

        def call(**kwargs: Any) -> Any:
            with self._lock:
                self.recording.requests[(self.phase, name)] += 1
            return method(**kwargs)

        return call

    def _charge(self, charges: list[Charge]) -> None:
        with self._lock:
            self.recording.charges.extend((self.phase, c) for c in charges)

    def _schema(self, table: str) -> TableSchema:
        if table not in self._tables:
            raise UnknownOperationError(f"no schema for table {table}")
        return self._tables[table]

    def _key_of(self, table: str, item: RawItem) -> RawItem:
        return {k: item[k] for k in self._schema(table).key_names}

    def _image(self, table: str, key: RawItem) -> RawItem | None:
        response = self._client.get_item(TableName=table, Key=key, ConsistentRead=True)
        found: RawItem | None = response.get("Item")
        return found

    # -- reads --

    def _get_item(self, **kwargs: Any) -> Any:
        table, key = kwargs["TableName"], kwargs["Key"]
        response = self._client.get_item(**kwargs)
        item = response.get("Item")
        if item is not None and "ProjectionExpression" in kwargs:
            item = self._image(table, key)  # a projection reads (and costs) the whole item
        partition = _hash_value(key[self._schema(table).hash_key])
        consistent = bool(kwargs.get("ConsistentRead", False))
        self._charge([read_charge("get_item", TABLE, partition, [item] if item else [], consistent=consistent)])
        return response

    def _batch_get_item(self, **kwargs: Any) -> Any:
        response = self._client.batch_get_item(**kwargs)
        unprocessed = response.get("UnprocessedKeys") or {}
        for table, request in kwargs["RequestItems"].items():
            schema = self._schema(table)
            consistent = bool(request.get("ConsistentRead", False))
            found = {
                tuple(_hash_value(i[k]) for k in schema.key_names): i
                for i in response.get("Responses", {}).get(table, [])
            }
            skipped = [
                tuple(_hash_value(k[n]) for n in schema.key_names) for k in unprocessed.get(table, {}).get("Keys", [])
            ]
            for key in request["Keys"]:
                ident = tuple(_hash_value(key[n]) for n in schema.key_names)
                if ident in skipped:
                    continue
                item = found.get(ident)
                if item is not None and "ProjectionExpression" in request:
                    item = self._image(table, key)
                self._charge(
                    [read_charge("batch_get_item", TABLE, ident[0], [item] if item else [], consistent=consistent)]
                )
        return response

    def _transact_get_items(self, **kwargs: Any) -> Any:
        response = self._client.transact_get_items(**kwargs)
        for request in kwargs["TransactItems"]:
            get = request["Get"]
            table, key = get["TableName"], get["Key"]
            item = self._image(table, key)
            partition = _hash_value(key[self._schema(table).hash_key])
            self._charge(
                [read_charge("transact_get_items", TABLE, partition, [item] if item else [], consistent=True, factor=2)]
            )
        return response

    def _query(self, **kwargs: Any) -> Any:
        response = self._client.query(**kwargs)
        table = kwargs["TableName"]
        schema = self._schema(table)
        index_name = kwargs.get("IndexName")
        if index_name is None:
            target, hash_key = TABLE, schema.hash_key
        else:
            index = next((i for i in schema.indexes if i.name == index_name), None)
            if index is None:
                raise UnknownOperationError(f"no index {index_name} on {table}")
            target, hash_key = index_name, index.hash_key
        evaluated = self._evaluated(kwargs)
        if len(evaluated) != response.get("ScannedCount", len(evaluated)):
            raise AssertionError(
                f"replayed query evaluated {len(evaluated)} items, DynamoDB said {response['ScannedCount']}"
            )
        partition = _key_condition_value(kwargs, hash_key)
        consistent = bool(kwargs.get("ConsistentRead", False))
        self._charge([read_charge("query", target, partition, evaluated, consistent=consistent)])
        return response

    def _evaluated(self, kwargs: dict[str, Any]) -> list[RawItem]:
        """The items a Query or Scan evaluated: the same request without its filter,
        projection or COUNT, so that the same page boundary (Limit and 1 MB apply before
        the filter) gives back every item read."""
        condition = kwargs.get("KeyConditionExpression", "")
        replay = {
            k: v
            for k, v in kwargs.items()
            if k in ("TableName", "IndexName", "Limit", "ExclusiveStartKey", "ScanIndexForward", "ConsistentRead")
        }
        if condition:
            replay["KeyConditionExpression"] = condition
        used = set(re.findall(_NAME_OR_VALUE, condition))
        names = {k: v for k, v in kwargs.get("ExpressionAttributeNames", {}).items() if k in used}
        values = {k: v for k, v in kwargs.get("ExpressionAttributeValues", {}).items() if k in used}
        if names:
            replay["ExpressionAttributeNames"] = names
        if values:
            replay["ExpressionAttributeValues"] = values
        operation = self._client.query if condition else self._client.scan
        return list(operation(**replay).get("Items", []))

    def _scan(self, **kwargs: Any) -> Any:
        response = self._client.scan(**kwargs)
        evaluated = self._evaluated(kwargs)
        consistent = bool(kwargs.get("ConsistentRead", False))
        self._charge(
            [read_charge("scan", kwargs.get("IndexName", TABLE), "(every partition)", evaluated, consistent=consistent)]
        )
        return response

    # -- writes --

    def _write(
        self, operation: str, table: str, key: RawItem, send: Any, after: Any, *, transactional: bool = False
    ) -> Any:
        """Send a single-item write and charge it; `after(response)` gives the item after the
        write when the request or its answer shows it (a put's item, ALL_NEW attributes),
        else None, and the item is read back."""
        from botocore.exceptions import ClientError

        schema = self._schema(table)
        old = self._image(table, key)
        try:
            response = send()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == _CONDITION_FAILED:
                self._charge(failed_write_charges(schema, operation, key, old, transactional=transactional))
            raise
        new = after(response)
        if new is None and operation != "delete_item":
            new = self._image(table, key)
        self._charge_write(schema, operation, key, old, new, transactional=transactional)
        return response

    def _charge_write(
        self,
        schema: TableSchema,
        operation: str,
        key: RawItem,
        old: RawItem | None,
        new: RawItem | None,
        *,
        transactional: bool,
    ) -> None:
        if old is None and new is None:  # deleting nothing still costs a unit
            self._charge(failed_write_charges(schema, operation, key, None, transactional=transactional))
        else:
            self._charge(write_charges(schema, operation, old, new, transactional=transactional))

    def _put_item(self, **kwargs: Any) -> Any:
        table = kwargs["TableName"]
        key = self._key_of(table, kwargs["Item"])
        return self._write("put_item", table, key, lambda: self._client.put_item(**kwargs), lambda _: kwargs["Item"])

    def _update_item(self, **kwargs: Any) -> Any:
        def after(response: dict[str, Any]) -> RawItem | None:
            return response.get("Attributes") if kwargs.get("ReturnValues") == "ALL_NEW" else None

        return self._write(
            "update_item", kwargs["TableName"], kwargs["Key"], lambda: self._client.update_item(**kwargs), after
        )

    def _delete_item(self, **kwargs: Any) -> Any:
        return self._write(
            "delete_item",
            kwargs["TableName"],
            kwargs["Key"],
            lambda: self._client.delete_item(**kwargs),
            lambda _: None,
        )

    def _batch_write_item(self, **kwargs: Any) -> Any:
        before: list[tuple[str, RawItem, RawItem | None]] = []
        for table, requests in kwargs["RequestItems"].items():
            for request in requests:
                if "PutRequest" in request:
                    key = self._key_of(table, request["PutRequest"]["Item"])
                else:
                    key = request["DeleteRequest"]["Key"]
                before.append((table, key, self._image(table, key)))
        response = self._client.batch_write_item(**kwargs)
        unprocessed = response.get("UnprocessedItems") or {}
        if unprocessed:
            raise UnknownOperationError("unprocessed batch writes are not charged yet")
        for table, key, old in before:
            self._charge_write(
                self._schema(table), "batch_write_item", key, old, self._image(table, key), transactional=False
            )
        return response

    def _transact_write_items(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        actions: list[tuple[str, str, RawItem, RawItem | None]] = []  # (kind, table, key, old)
        for action in kwargs["TransactItems"]:
            ((kind, body),) = action.items()
            table = body["TableName"]
            key = self._key_of(table, body["Item"]) if kind == "Put" else body["Key"]
            actions.append((kind, table, key, self._image(table, key)))
        try:
            response = self._client.transact_write_items(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == _CANCELLED:
                for _, table, key, old in actions:
                    self._charge(
                        failed_write_charges(self._schema(table), "transact_write_items", key, old, transactional=True)
                    )
            raise
        for kind, table, key, old in actions:
            schema = self._schema(table)
            if kind == "ConditionCheck":  # checked, not written: charged as a transactional write of the item
                self._charge(failed_write_charges(schema, "transact_write_items", key, old, transactional=True))
                continue
            self._charge_write(schema, "transact_write_items", key, old, self._image(table, key), transactional=True)
        return response


def _key_condition_value(kwargs: dict[str, Any], attribute: str) -> str:
    """The partition key value a Query names: `<attribute or #alias> = :value`."""
    names = kwargs.get("ExpressionAttributeNames", {})
    values = kwargs.get("ExpressionAttributeValues", {})
    for left, right in re.findall(r"(#?[A-Za-z0-9_]+)\s*=\s*(:[A-Za-z0-9_]+)", kwargs["KeyConditionExpression"]):
        if names.get(left, left) == attribute:
            return _hash_value(values[right])
    raise UnknownOperationError(f"cannot find {attribute} in {kwargs['KeyConditionExpression']!r}")
