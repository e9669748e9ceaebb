"""The table's key schema: every key and index-key format, written once.

One table holds everything. Every key is built from the caller's organisation, so a lookup
with it cannot reach another organisation's item. Configs, tasks and keys live in the
organisation's partition (`PK = ORG#<org>`, sort key `<KIND>#<id>`; the organisation
itself: `ORG`). An event has a partition of its own (`PK = EVENT#<org>#<id>`), holding:

- `SK = DATA`: what was published (type, action, key, the data compressed), written once;
- `SK = STATE`: what changes (state, attempts, the claim, the current round's attempt
  records), small, and the only item of the event the indexes hold;
- `SK = ATTEMPT#<sort id>`: the attempt records of earlier rounds (moved there by a resend).

Lists read one of three sparse indexes, newest first, all sorted by
`CreatedSK = <date_created>#<id>` (a fixed-width string, so it sorts as time does); every
index projects the keys only, and a page fetches its items by key:

| index     | partition (`<o>` is the organisation)                 | used for                |
|-----------|-------------------------------------------------------|-------------------------|
| ByType    | `<o>#webhook_config` (absent once deactivated), `<o>#task` | plain lists        |
| ByState   | `<o>#<type>#state=<state>`                            | `state=` filters; every list of events |
| ByRelated | `<o>#task#target=<config>`, `<o>#event#type=<type>`   | `target=`, `type=`      |

An event's index partitions are split in EVENT_SHARDS (`<partition>#<nn>`, nn from the
event's id), and a list of events merges them (`storage.merge`): a time-ordered sort key
keeps each partition's writes in one place, so only more partitions spread them. A plain
list of events merges its state partitions: an event is in exactly one of them, so no
ByType entry is written for it.

ByOpen (`OpenPK = open#<shard>`, `DueSK = <due>#<id>`) holds test tasks that have not ended,
by when they are due, for the sweep. Tokens are found by hash: `PK = TOKEN#<sha256>`,
`SK = TOKEN`. `SK = COUNTS#webhook_config` in the organisation's partition holds its
configs' counts by state. Each organisation's rates (docs/design.md §18) are in a partition
of their own, `PK = LIMIT#<org>`, `SK = RATE#<name>`: every API request writes there, and
nothing that routes events reads it. The slots of a config with a `rate_limit`
(docs/design.md §19.1) are in partitions of their own too, `PK = PACE#<org>#<config>#<shard>`,
`SK = PACE`: each delivery to such a config writes there. An idempotency key's claim on the
first event published with it (docs/design.md §7.8) is one item in a partition of its own,
`PK = IDEMPOTENCY#<org>#<sha256 of the key>`, `SK = IDEMPOTENCY`: the key itself is not kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from typing import Any

from webhook_service.timefmt import format_datetime

INDEX_BY_TYPE = "ByType"
INDEX_BY_STATE = "ByState"
INDEX_BY_RELATED = "ByRelated"
INDEX_BY_OPEN = "ByOpen"  # sparse: tasks and events that have not ended, by when they are due
INDEX_ATTRIBUTE = {INDEX_BY_TYPE: "TypePK", INDEX_BY_STATE: "StatePK", INDEX_BY_RELATED: "RelatedPK"}
OPEN_SHARDS = 64  # ByOpen partitions (every organisation's): no one partition takes every open item's writes
EVENT_SHARDS = 16  # partitions of each of an event's index partitions
EVENT_DATA_SK = "DATA"
EVENT_STATE_SK = "STATE"
ARCHIVED_ATTEMPT_PREFIX = "ATTEMPT#"

ORGANISATION_SK = "ORG"
TOKEN_SK = "TOKEN"  # noqa: S105 (a sort key, not a secret)
CONFIG_COUNTS_SK = "COUNTS#webhook_config"
IDEMPOTENCY_SK = "IDEMPOTENCY"
ACTIVE_CONFIGS = "active"  # the counts item's number of configs not deactivated
CONFIG_QUOTA = "config_quota"  # the counts item's cap on it, when the operator set one
LIMIT_PREFIX = "LIMIT#"  # the partitions of rates, the only ones every API function may write (IAM)
SORT_KEY_PREFIX = {
    "webhook_config": "CONFIG#",
    "task": "TASK#",
    "key": "KEY#",
}

# Resources whose index partitions are split in EVENT_SHARDS, and whose plain lists merge
# their state partitions (they have no ByType entries).
SHARDED = frozenset({"event"})

# The fields a list can be narrowed by through ByRelated, per resource (`target=`, `type=`);
# `state=` goes through ByState for every resource.
RELATED_FIELD = {"task": "target", "event": "type"}


def org_pk(organisation: str) -> str:
    """The partition of an organisation's items."""
    return f"ORG#{organisation}"


def limit_pk(organisation: str) -> str:
    """The partition of an organisation's rates: apart from `ORG#<org>`, which routing reads."""
    return f"{LIMIT_PREFIX}{organisation}"


def rate_key(organisation: str, name: str) -> dict[str, Any]:
    """The table key of one of an organisation's rates (`api`, `resends`, `tests`)."""
    return {"PK": limit_pk(organisation), "SK": f"RATE#{name}"}


def pace_key(organisation: str, config_id: str, shard: int) -> dict[str, Any]:
    """The table key of one of the items that hand out a config's delivery slots."""
    return {"PK": f"PACE#{organisation}#{config_id}#{shard}", "SK": "PACE"}


def idempotency_claim_key(organisation: str, idempotency_key: str) -> dict[str, Any]:
    """The table key of an idempotency key's claim: its hash, so a key that carries something
    private (an order number, an email) is not stored, and any key fits a partition key."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
    return {"PK": f"IDEMPOTENCY#{organisation}#{digest}", "SK": IDEMPOTENCY_SK}


def token_pk(token_hash: str) -> str:
    """The partition of a token's item, found by the token's hash."""
    return f"TOKEN#{token_hash}"


def sort_key(resource: str, resource_id: str) -> str:
    """The sort key of a resource in its organisation's partition."""
    return SORT_KEY_PREFIX[resource] + resource_id


def event_pk(organisation: str, event_id: str) -> str:
    """The partition of one event: its data, its state and its earlier rounds' attempts."""
    return f"EVENT#{organisation}#{event_id}"


def event_data_key(organisation: str, event_id: str) -> dict[str, Any]:
    """The table key of what was published (written once)."""
    return {"PK": event_pk(organisation, event_id), "SK": EVENT_DATA_SK}


def archived_attempt_key(organisation: str, event_id: str, sort_id: str) -> dict[str, Any]:
    """The table key of an attempt of an earlier round; `sort_id` orders them as time does."""
    return {"PK": event_pk(organisation, event_id), "SK": ARCHIVED_ATTEMPT_PREFIX + sort_id}


def item_key(organisation: str, resource: str, resource_id: str) -> dict[str, Any]:
    """The table key of one resource of an organisation; for an event, its state's (the item
    its lists and writes address)."""
    if resource == "event":
        return {"PK": event_pk(organisation, resource_id), "SK": EVENT_STATE_SK}
    return {"PK": org_pk(organisation), "SK": sort_key(resource, resource_id)}


def organisation_key(organisation: str) -> dict[str, Any]:
    """The table key of the organisation's own item."""
    return {"PK": org_pk(organisation), "SK": ORGANISATION_SK}


def token_key(token_hash: str) -> dict[str, Any]:
    """The table key of a token's item."""
    return {"PK": token_pk(token_hash), "SK": TOKEN_SK}


def id_of_created_sk(created: str) -> str:
    """The resource id in a lists' sort key (`created_sk`)."""
    return created.rsplit("#", 1)[1]


def created_sk(date_created: str, resource_id: str) -> str:
    """The lists' sort key: creation time, then id (both fixed width)."""
    return f"{date_created}#{resource_id}"


def type_pk(organisation: str, resource: str) -> str:
    """ByType's partition: every listed item of one kind."""
    return f"{organisation}#{resource}"


def state_pk(organisation: str, resource: str, state: str) -> str:
    """ByState's partition: the items of one kind in one state."""
    return f"{type_pk(organisation, resource)}#state={state}"


def related_pk(organisation: str, resource: str, value: str) -> str:
    """ByRelated's partition: the items of one kind related to `value` (a task's target
    config, an event's type, an attempt's event)."""
    return f"{type_pk(organisation, resource)}#{RELATED_FIELD[resource]}={value}"


def _spread(resource_id: str, salt: bytes) -> int:
    """A number from an id, the same every time, evenly spread whatever the id's form."""
    return zlib.crc32(salt + resource_id.encode("utf-8"))


def open_shard(resource_id: str) -> int:
    """The ByOpen partition of a task or event."""
    return _spread(resource_id, b"open") % OPEN_SHARDS


def event_shard(event_id: str) -> int:
    """The shard of an event's index partitions."""
    return _spread(event_id, b"index") % EVENT_SHARDS


def shard_partition(partition: str, shard: int) -> str:
    """One of the EVENT_SHARDS partitions an index partition of events is split in."""
    return f"{partition}#{shard:02d}"


def written_partition(resource: str, partition: str, resource_id: str) -> str:
    """The index partition an item is written in: `partition`, or its item's shard of it."""
    return shard_partition(partition, event_shard(resource_id)) if resource in SHARDED else partition


def read_partitions(resource: str, partitions: list[str]) -> list[str]:
    """The index partitions a list of `partitions` reads: them, or all of their shards."""
    if resource in SHARDED:
        return [shard_partition(partition, shard) for partition in partitions for shard in range(EVENT_SHARDS)]
    return list(partitions)


def open_pk(shard: int) -> str:
    """A ByOpen partition."""
    return f"open#{shard}"


def open_keys(resource_id: str, due: dt.datetime) -> dict[str, Any]:
    """The ByOpen index keys of a task that has not ended. Every write that ends it replaces
    the whole item without them, so it leaves the index."""
    return {"OpenPK": open_pk(open_shard(resource_id)), "DueSK": f"{format_datetime(due)}#{resource_id}"}


def count_attribute(state: str) -> str:
    """The attribute of the config counts item that counts configs in `state`."""
    return f"state_{state}"
