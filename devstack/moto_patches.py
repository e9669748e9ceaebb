"""Three changes to moto's DynamoDB that keep the local stack's cost per request low and
flat as its table grows. None changes what a request answers; tests/unit/test_moto_patches.py
compares them against moto's own behaviour.

moto (5.2.5) answers every Query by sorting the whole table with keys that are rebuilt at
each comparison, and backs up every table a transaction touches with a deep copy of the
whole table. Both cost about 65 microseconds per stored item here, per request: with the
6,000 items a long `make dev` session or the integration suite leaves behind, a Query or
a transaction took about 0.4 s, and the one-at-a-time DynamoDB lock queued the rest
behind it (figures: `python -m bench.localmoto`).

- `all_items` returns the same order, sorting on keys computed once per item, and string
  and binary values compare and hash without being cast first (the cast is the identity).
- `transact_write_items` backs up only the items the transaction names, and puts exactly
  those back if it fails; the rest of the table is not copied.
- An answer that is plain JSON already (strings, numbers, booleans, null, lists and maps:
  every item of this service) is written with `json.dumps`: the JSON moto's model-driven
  serializer writes for it (its keys in the result's order rather than the output shape's),
  without walking the operation's output shape:
  that walk cost 2-4 ms of the 6-8 ms a read of one item took here (`py-spy` of the local
  stack under `bench/isolation.py`'s load), the largest part of the local stack's storage
  time. Anything else (bytes, dates) still goes through moto's serializer.

The transaction change assumes DynamoDB requests answered one at a time, as `EmbeddedMoto`
answers them. The unit tests apply it to moto in-process too (tests/unit/conftest.py): the
ones that call moto from several threads do so through `devstack.aws.serial` clients, and
were two calls to overlap, a cancelled transaction that puts back only the items it names
loses no more of the other call's writes than moto's own restore of the whole table would.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_state = threading.local()  # .in_transaction: the backed-up transaction running on this thread
_originals: list[tuple[Any, str, Any]] = []  # (class, attribute, what apply() replaced)
# moto compares and hashes a DynamoType by its cast_value, which for a string or binary is
# the value itself: for these two types the value is used directly (same answer, no cast).
_PLAIN = ("S", "B")


def apply() -> bool:
    """Install the changes once; False (and a warning) if this moto is not shaped as expected."""
    if _originals:
        return True
    try:
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.dynamo_type import DynamoType
        from moto.dynamodb.models.table import Table
        from moto.dynamodb.responses import DynamoResult
    except ImportError:  # pragma: no cover - moto is a dev requirement
        log.warning("moto's DynamoDB models not found; the local stack runs without its speed-ups")
        return False
    expected = [(DynamoDBBackend, "transact_write_items"), (Table, "all_items"), (DynamoResult, "execute_result")]
    if any(not callable(getattr(cls, name, None)) for cls, name in expected) or "__deepcopy__" in vars(Table):
        log.warning("this moto's DynamoDB is not the shape the speed-ups expect; running without them")
        return False
    replacements: list[tuple[Any, str, Any]] = [
        (DynamoType, "__eq__", _plain_eq(DynamoType.__eq__)),
        (DynamoType, "__ne__", _plain_ne(DynamoType.__ne__)),
        (DynamoType, "__hash__", _plain_hash(DynamoType.__hash__)),
        (Table, "all_items", _all_items),
        (Table, "__deepcopy__", _table_deepcopy),
        (DynamoDBBackend, "transact_write_items", _backed_up_transaction(DynamoDBBackend.transact_write_items)),
        (DynamoResult, "execute_result", _plain_json_result(DynamoResult.execute_result)),
    ]
    for cls, name, replacement in replacements:
        _originals.append((cls, name, vars(cls).get(name)))
        setattr(cls, name, replacement)
    return True


def applied() -> bool:
    return bool(_originals)


def remove() -> None:
    """Put moto back as it was (the tests compare both)."""
    while _originals:
        cls, name, original = _originals.pop()
        if original is None:
            delattr(cls, name)
        else:
            setattr(cls, name, original)


def _key_value(value: Any) -> Any:
    # Key attributes are S, N or B; computed once per item, this gives moto's order.
    return value.value if value.type in _PLAIN else value.cast_value


def _plain_eq(original: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def equal(self: Any, other: Any) -> bool:
        if self.type in _PLAIN and other.type == self.type:
            return bool(self.value == other.value)
        return original(self, other)

    return equal


def _plain_ne(original: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def not_equal(self: Any, other: Any) -> bool:
        if self.type in _PLAIN and other.type == self.type:
            return bool(self.value != other.value)
        return original(self, other)

    return not_equal


def _plain_hash(original: Callable[[Any], int]) -> Callable[[Any], int]:
    def hash_value(self: Any) -> int:
        if self.type in _PLAIN:
            return hash((self.type, self.value))
        return original(self)

    return hash_value


def _sort_key(item: Any) -> Any:
    if item.range_key:
        return (_key_value(item.hash_key), _key_value(item.range_key))
    return _key_value(item.hash_key)


def _all_items(self: Any) -> list[Any]:
    if self.range_key_attr:
        items = [item for bucket in self.items.values() for item in bucket.values()]
    else:
        items = list(self.items.values())
    return sorted(items, key=_sort_key)


def _table_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
    if getattr(_state, "in_transaction", False):
        # moto's own whole-table backup: the items the transaction names are backed up instead.
        return self
    # Any other deep copy (a backup, a restore) is the ordinary one.
    reductor = self.__reduce_ex__(4)
    return copy._reconstruct(self, memo, *reductor)  # type: ignore[attr-defined]


def _named_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    """(table, hash value, range value, a deep copy of the item now or None) per named item."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    saved = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = backend.tables[op["TableName"]]
            key = op["Item"] if op_type == "Put" else op["Key"]
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        except (KeyError, TypeError, AttributeError, StopIteration):
            continue  # moto refuses it before writing anything for it
        saved.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
    return saved


def _put_back(saved: list[tuple[Any, Any, Any, Any]]) -> None:
    for table, hash_value, range_value, item in reversed(saved):
        if table.range_key_attr:
            bucket = table.items[hash_value]
            if item is None:
                bucket.pop(range_value, None)
                if not bucket:
                    table.items.pop(hash_value, None)
            else:
                bucket[range_value] = item
        elif item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item


def _backed_up_transaction(original: Callable[..., None]) -> Callable[..., None]:
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = _named_items(self, transact_items)
        _state.in_transaction = True
        try:
            original(self, transact_items)
        except BaseException:
            _put_back(saved)
            raise
        finally:
            _state.in_transaction = False

    transact_write_items.__doc__ = original.__doc__
    return transact_write_items


_JSON_CONTENT_TYPE = {"Content-Type": "application/x-amz-json-1.0"}  # DynamoDB's JSON protocol


def _plain(value: Any) -> bool:
    """Whether `value` is JSON as it stands, so that json.dumps writes the JSON moto's serializer would."""
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return False


def _plain_json_result(original: Callable[..., Any]) -> Callable[..., Any]:
    def execute_result(self: Any, context: Any) -> Any:
        if not _plain(self.result):
            return original(self, context)
        return 200, dict(_JSON_CONTENT_TYPE), json.dumps(self.result)

    return execute_result
