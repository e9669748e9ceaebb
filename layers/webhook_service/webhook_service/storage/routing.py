"""What routes deliveries (organisations, keys, configs), kept a few seconds per store.

Every event is routed twice (checked when published, routed when delivered) through its
organisation's item, its key's item and its config's item, all in the organisation's
partition. Read each time, a busy organisation's events would put thousands of strongly
consistent reads a second on that one partition (DynamoDB allows 3,000 read units a second
per partition key value). Kept here for `seconds`, they cost a read per item per process
per `seconds` instead, whatever the rate.

What that costs: a change to routing made by another process (another Lambda instance)
reaches deliveries up to `seconds` later. A write this store's table makes to an
organisation's partition forgets everything kept at once: the table reports every write
it sends (`Table.write`), so no write method can forget to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from webhook_service.domain.configs import WebhookConfig
from webhook_service.domain.events import Event
from webhook_service.domain.tenants import Key, Organisation
from webhook_service.storage.codec import Item
from webhook_service.storage.event_items import event_from_items
from webhook_service.storage.items import config_from_item, key_from_item, organisation_from_item
from webhook_service.storage.keys import event_data_key, item_key, org_pk, organisation_key

if TYPE_CHECKING:
    from webhook_service.storage.table import Table

ROUTING_CACHE_SECONDS = 5.0
ROUTING_CACHE_ITEMS = 10_000  # kept at most; all are forgotten when more would be kept

_ORGANISATION_PREFIX = org_pk("")  # every organisation partition starts so


class RoutingCache:
    """Items by (PK, SK), each kept until it is `seconds` old (0: nothing is kept)."""

    def __init__(self, seconds: float = ROUTING_CACHE_SECONDS) -> None:
        self.seconds = seconds
        self._items: dict[tuple[str, str], tuple[float, Item]] = {}
        self._lock = threading.Lock()

    def get(self, key: dict[str, Any]) -> Item | None:
        with self._lock:
            kept = self._items.get((key["PK"], key["SK"]))
        if kept is None or time.monotonic() - kept[0] >= self.seconds:
            return None
        return kept[1]

    def keep(self, item: Item) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._items) >= ROUTING_CACHE_ITEMS:
                self._items.clear()
            self._items[(item["PK"], item["SK"])] = (time.monotonic(), item)

    def forget(self) -> None:
        with self._lock:
            self._items.clear()

    def written(self, partitions: Iterable[str]) -> None:
        """A write of these partitions succeeded: forget everything when one is an
        organisation's (where every routing item lives)."""
        if any(pk.startswith(_ORGANISATION_PREFIX) for pk in partitions):
            self.forget()


class RoutingReader:
    """The reads that route an event: its organisation, its key and the config they name,
    through the cache (`cache`); the event itself, when asked for, read every time."""

    def __init__(self, table: Table, cache: RoutingCache) -> None:
        self.table = table
        self.cache = cache

    def _items(self, keys: list[Item], also: list[Item]) -> dict[tuple[str, str], Item]:
        """Routing items (`keys`), from the cache when it holds them, and the items of `also`
        (never cached), in one request."""
        found: dict[tuple[str, str], Item] = {}
        wanted = list(also)
        for key in keys:
            kept = self.cache.get(key)
            if kept is None:
                wanted.append(key)
            else:
                found[(key["PK"], key["SK"])] = kept
        if wanted:
            read = self.table.batch_get(wanted)
            found.update(read)
            for key in keys:
                item = read.get((key["PK"], key["SK"]))
                if item is not None:  # what is missing is read again: it may be made any moment
                    self.cache.keep(item)
        return found

    def read(
        self, organisation: str, key_id: str | None, event_id: str | None = None
    ) -> tuple[Event | None, Key | None, Organisation | None]:
        """What routes an event, in one strongly consistent round trip at most: the event
        itself (both its items, when `event_id` is given), its key (when it has one) and its
        organisation."""
        keys = [organisation_key(organisation)]
        key_key = item_key(organisation, "key", key_id) if key_id is not None else None
        if key_key is not None:
            keys.append(key_key)
        event_keys = (
            [event_data_key(organisation, event_id), item_key(organisation, "event", event_id)] if event_id else []
        )
        found = self._items(keys, event_keys)

        def one(key: Item | None) -> Item | None:
            return found.get((key["PK"], key["SK"])) if key is not None else None

        data, state = (one(event_keys[0]), one(event_keys[1])) if event_keys else (None, None)
        key, organisation_found = one(key_key), one(keys[0])
        return (
            event_from_items(data, state) if data and state else None,
            key_from_item(key) if key else None,
            organisation_from_item(organisation_found) if organisation_found else None,
        )

    def config(self, organisation: str, config_id: str) -> WebhookConfig | None:
        """The config an event is routed to, through the cache: up to the cache's seconds old
        when another process changed it."""
        key = item_key(organisation, "webhook_config", config_id)
        item = self._items([key], []).get((key["PK"], key["SK"]))
        return config_from_item(item) if item else None
