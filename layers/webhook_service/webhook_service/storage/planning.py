"""List planning, pure: which index and partition a list reads, the sort-key range its
date bounds and cursors give, the Query it sends, and the total a page reports. No I/O."""

from __future__ import annotations

import datetime as dt
from typing import Any

from webhook_service.domain.events import EVENT_STATES
from webhook_service.storage.codec import Item, marshal
from webhook_service.storage.keys import (
    INDEX_ATTRIBUTE,
    INDEX_BY_RELATED,
    INDEX_BY_STATE,
    INDEX_BY_TYPE,
    RELATED_FIELD,
    read_partitions,
    related_pk,
    state_pk,
    type_pk,
)
from webhook_service.storage.merge import MERGE_SLACK
from webhook_service.timefmt import format_datetime

# A list page reads at most its limit + 1 items plus this many more: the items named by
# `after_id` and `before_id`, and the organisation's config counts (one item).
LIST_BOOKKEEPING_ITEMS = 3


# The items of one resource a page fetches by key: an event's two (what was published, its state).
ITEMS_PER_RESOURCE = {"event": 2}


def entries_bound(resource: str, limit: int) -> int:
    """The most index entries a page of `resource` reads: `limit + 1`, and MERGE_SLACK more
    for each shard merged (`storage.merge`); a plain list of events reads that for each
    state, whose shards it merges on their own before it merges the states."""
    shards = len(read_partitions(resource, [""]))
    per_base = limit + 1 + (shards * MERGE_SLACK if shards > 1 else 0)
    return per_base * len(STATES_MERGED.get(resource, ("",)))


def read_bound(resource: str, limit: int) -> int:
    """The most items a page of `resource` reads, whatever the organisation's history: its
    index entries (`entries_bound`), the items they name (fetched by key: only the page's,
    unless a filter no index serves must look at each), and LIST_BOOKKEEPING_ITEMS."""
    entries = entries_bound(resource, limit)
    return entries * (1 + ITEMS_PER_RESOURCE.get(resource, 1)) + LIST_BOOKKEEPING_ITEMS


# -- marshalling -----------------------------------------------------------------------


def config_total(counts: dict[str, int], filters: dict[str, str]) -> int:
    """How many configs a list without date bounds holds: those of its `state=`, or every
    config not deactivated."""
    if "state" in filters:
        return counts.get(filters["state"], 0)
    return sum(n for state, n in counts.items() if state != "deactivated")


_ABOVE_ALL = "~"  # sorts after every character a sort key holds (digits, hex, '-', ':', '.', 'T', 'Z', '#')


def strictly_below(sort_key: str) -> str:
    """The largest bound that keeps out `sort_key` and keeps every smaller sort key in.

    Sort keys all have one length (27-character datetime, '#', 36-character UUID), so a
    smaller one differs at some position with a smaller character.
    """
    return sort_key[:-1] + chr(ord(sort_key[-1]) - 1) + _ABOVE_ALL


def date_range(bounds: dict[str, dt.datetime]) -> tuple[str | None, str | None]:
    low: str | None = None
    high: str | None = None
    if "gte" in bounds:
        low = format_datetime(bounds["gte"])
    if "gt" in bounds:
        candidate = format_datetime(bounds["gt"]) + "#" + _ABOVE_ALL
        low = max(low, candidate) if low else candidate
    if "lte" in bounds:
        high = format_datetime(bounds["lte"]) + "#" + _ABOVE_ALL
    if "lt" in bounds:
        candidate = format_datetime(bounds["lt"])
        high = min(high, candidate) if high else candidate
    return low, high


# Resources with no ByType entries: a plain list of them merges these state partitions.
STATES_MERGED = {"event": EVENT_STATES}


def plan(organisation: str, resource: str, filters: dict[str, str]) -> tuple[str, list[str], dict[str, str]]:
    """Choose the index and the partitions a list reads, and the filters left to apply to
    what it reads."""
    rest = dict(filters)
    related = RELATED_FIELD.get(resource)
    if related is not None and related in rest:
        return INDEX_BY_RELATED, [related_pk(organisation, resource, rest.pop(related))], rest
    if "state" in rest:
        return INDEX_BY_STATE, [state_pk(organisation, resource, rest.pop("state"))], rest
    if resource in STATES_MERGED:
        return INDEX_BY_STATE, [state_pk(organisation, resource, state) for state in STATES_MERGED[resource]], rest
    return INDEX_BY_TYPE, [type_pk(organisation, resource)], rest


def query_kwargs(
    table_name: str, index: str, partition: str, low: str | None, high: str | None, filters: dict[str, str]
) -> dict[str, Any]:
    names = {"#pk": INDEX_ATTRIBUTE[index]}
    values: Item = {":pk": partition}
    condition = "#pk = :pk"
    if low is not None or high is not None:
        names["#sk"] = "CreatedSK"
    if low is not None and high is not None:
        condition += " AND #sk BETWEEN :low AND :high"
        values.update({":low": low, ":high": high})
    elif low is not None:
        condition += " AND #sk >= :low"
        values[":low"] = low
    elif high is not None:
        condition += " AND #sk <= :high"
        values[":high"] = high
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": index,
        "KeyConditionExpression": condition,
        "ScanIndexForward": False,
    }
    if filters:
        clauses = []
        for n, (field_name, value) in enumerate(sorted(filters.items())):
            names[f"#f{n}"] = field_name
            values[f":f{n}"] = value
            clauses.append(f"#f{n} = :f{n}")
        kwargs["FilterExpression"] = " AND ".join(clauses)
    kwargs["ExpressionAttributeNames"] = names
    kwargs["ExpressionAttributeValues"] = marshal(values)
    return kwargs
