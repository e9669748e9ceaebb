"""DynamoDB storage: the one package that knows the table's keys, indexes and item shapes.

- `keys`: the key schema, every key and index-key format written once;
- `items`: each resource to its item and back;
- `planning`: list planning (index, ranges, cursors, totals), pure and tested without moto;
- `codec`: attribute values, and DynamoDB's errors as the service's;
- `store`: the `Store`, every read and write of the one table.
"""

from webhook_service.storage.codec import Item, marshal, unmarshal
from webhook_service.storage.items import (
    CONFIG_STATES,
    HISTORY_TTL,
    attempt_from_item,
    attempt_item,
    config_counts_item,
    config_from_item,
    config_item,
    event_expires_at,
    event_from_item,
    event_item,
    key_from_item,
    key_item,
    organisation_from_item,
    organisation_item,
    task_from_item,
    task_item,
)
from webhook_service.storage.keys import CONFIG_COUNTS_SK, EVENT_SHARDS, OPEN_SHARDS, created_sk, item_key, org_pk
from webhook_service.storage.merge import MERGE_SLACK
from webhook_service.storage.planning import LIST_BOOKKEEPING_ITEMS, Page, UnknownCursorError, read_bound
from webhook_service.storage.store import BATCH_GET_TRIES, OUTCOME_TRIES, Store

__all__ = [
    "BATCH_GET_TRIES",
    "CONFIG_COUNTS_SK",
    "CONFIG_STATES",
    "EVENT_SHARDS",
    "HISTORY_TTL",
    "LIST_BOOKKEEPING_ITEMS",
    "MERGE_SLACK",
    "OPEN_SHARDS",
    "OUTCOME_TRIES",
    "Item",
    "Page",
    "Store",
    "UnknownCursorError",
    "attempt_from_item",
    "attempt_item",
    "config_counts_item",
    "config_from_item",
    "config_item",
    "created_sk",
    "event_expires_at",
    "event_from_item",
    "event_item",
    "item_key",
    "key_from_item",
    "key_item",
    "marshal",
    "org_pk",
    "organisation_from_item",
    "organisation_item",
    "read_bound",
    "task_from_item",
    "task_item",
    "unmarshal",
]
