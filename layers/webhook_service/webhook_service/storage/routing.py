"""What routes deliveries (organisations, keys, configs), kept a few seconds per process.

Every event is routed twice (checked when published, routed when delivered) through its
organisation's item, its key's item and its config's item, all in the organisation's
partition. Read each time, a busy organisation's events would put thousands of strongly
consistent reads a second on that one partition (DynamoDB allows 3,000 read units a second
per partition key value). Kept here for `seconds`, they cost a read per item per process
per `seconds` instead, whatever the rate.

What that costs: a change to routing made by another process (another Lambda instance)
reaches deliveries up to `seconds` later; a write this process makes to an organisation's
partition forgets everything kept at once. Every DynamoDB client a Store uses reports its
successful writes here (a botocore event hook), so no write method can forget to.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from webhook_service.storage.codec import Item
from webhook_service.storage.keys import org_pk

ROUTING_CACHE_SECONDS = 5.0
ROUTING_CACHE_ITEMS = 10_000  # kept at most; all are forgotten when more would be kept

_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
_ORGANISATION_PREFIX = org_pk("")  # every organisation partition starts so


class RoutingCache:
    """Items by (table, PK, SK), each kept until it is `seconds` old."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str], tuple[float, Item]] = {}
        self._lock = threading.Lock()

    def get(self, table: str, key: dict[str, Any], seconds: float) -> Item | None:
        with self._lock:
            kept = self._items.get((table, key["PK"], key["SK"]))
        if kept is None or time.monotonic() - kept[0] >= seconds:
            return None
        return kept[1]

    def keep(self, table: str, item: Item) -> None:
        with self._lock:
            if len(self._items) >= ROUTING_CACHE_ITEMS:
                self._items.clear()
            self._items[(table, item["PK"], item["SK"])] = (time.monotonic(), item)

    def forget(self) -> None:
        with self._lock:
            self._items.clear()


CACHE = RoutingCache()


def _partitions_written(params: dict[str, Any]) -> list[str]:
    """The partition keys a write request names (attribute values as sent: {"S": ...})."""
    requests = [params]
    for action in params.get("TransactItems", []):
        requests.extend(action.values())
    for writes in params.get("RequestItems", {}).values():
        for write in writes:
            requests.extend(write.values())
    found = []
    for request in requests:
        for field in ("Key", "Item"):
            pk = request.get(field, {}).get("PK", {})
            if isinstance(pk, dict) and isinstance(pk.get("S"), str):
                found.append(pk["S"])
    return found


def _before_write(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    if any(pk.startswith(_ORGANISATION_PREFIX) for pk in _partitions_written(params)):
        context["routing_cache_forget"] = True


def _after_write(context: dict[str, Any], **_: Any) -> None:
    if context.get("routing_cache_forget"):
        CACHE.forget()


def watch_writes(client: Any) -> None:
    """Make `client`'s successful writes to an organisation's partition forget the cache (once
    per client, however many stores use it)."""
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is None:
        return
    for operation in _WRITES:
        events.register(
            f"before-parameter-build.dynamodb.{operation}", _before_write, unique_id=f"routing-cache-{operation}"
        )
        events.register(f"after-call.dynamodb.{operation}", _after_write, unique_id=f"routing-cache-done-{operation}")
