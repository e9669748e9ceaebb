"""One list read from several index partitions at once, newest first, within a bound.

An event's index partitions are split in shards (`keys.EVENT_SHARDS`) so that their writes
spread. A page of events reads every shard and merges them by sort key (`CreatedSK`, unique
and ordered as time is). Pure: the reads go through a `fetch` the caller gives.

Each round reads the shards that may still hold one of the page's items: every shard in the
first round; afterwards only those whose last item read is newer than the `need`-th newest
item found so far (a shard whose reads stopped below it cannot hold anything newer). A round
reads about what is missing, spread over the shards it reads, so a page of 1,000 takes a
few rounds, not one per item.

What a page reads is bounded by `need + partitions * MERGE_SLACK` items. When that budget
runs out before the page is whole (it takes shards far out of balance, which ids spread
evenly make rare), the page ends early: it holds the matches newer than the point every
shard has been read down to, and that point is where the next page starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from webhook_service.storage.codec import Item

MERGE_SLACK = 8  # items a page may read past `need`, per partition merged

T = TypeVar("T")


@dataclass(frozen=True)
class Chunk:
    """What one read of one partition gave."""

    items: list[Item]  # the matches read, newest first
    read: int  # items read, matching or not (DynamoDB's ScannedCount)
    last: str | None  # sort key of the last item read; None when the partition has no more
    resume: Any = None  # where the next read of this partition starts (opaque to the merge)


# (partition number, resume from the last chunk or None for the top, how many items to read)
Fetch = Callable[[int, Any, int], Chunk]
Runner = Callable[[Sequence[Callable[[], T]]], list[T]]


def run_in_turn(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run each call, one after another (a `Runner`)."""
    return [call() for call in calls]


@dataclass
class _Lane:
    resume: Any = None
    last: str | None = None
    ended: bool = False


def _sort_key(item: Item) -> str:
    return str(item["CreatedSK"])


def merge_newest(
    partitions: int, need: int, fetch: Fetch, run: Runner[Chunk] = run_in_turn
) -> tuple[list[Item], str | None]:
    """The `need` newest matches across `partitions`, newest first, and None (fewer when the
    partitions hold fewer); or, when the read budget runs out first, the matches newer than
    the point every partition has been read down to, and that point's sort key."""
    budget = need + partitions * MERGE_SLACK
    lanes = [_Lane() for _ in range(partitions)]
    found: list[Item] = []
    read = 0
    sizes = dict.fromkeys(range(partitions), math.ceil(need / partitions))
    complete: list[Item] = []
    frontier: str | None = None
    for _ in range(budget + partitions + 1):  # every round reads an item or ends a partition
        plan = _within(sizes, budget - read)
        if not plan:
            break
        chunks = run([_reader(fetch, lane_no, lanes[lane_no].resume, size) for lane_no, size in plan])
        for (lane_no, _size), chunk in zip(plan, chunks, strict=True):
            lane = lanes[lane_no]
            lane.resume, lane.last, lane.ended = chunk.resume, chunk.last, chunk.last is None
            found.extend(chunk.items)
            read += chunk.read
        found.sort(key=_sort_key, reverse=True)
        open_lanes = {n: str(lane.last) for n, lane in enumerate(lanes) if not lane.ended}
        if not open_lanes:
            return found[:need], None
        frontier = max(open_lanes.values())
        complete = [item for item in found if _sort_key(item) >= frontier]
        if len(complete) >= need:
            return complete[:need], None
        sizes = _next_sizes(open_lanes, found, need, partitions)
    return complete, frontier


def _within(sizes: dict[int, int], room: int) -> list[tuple[int, int]]:
    """The reads of a round, cut to the budget left: the partitions holding the page back
    most (listed first) keep theirs."""
    plan = []
    for lane_no, size in sizes.items():
        size = min(size, room)
        if size < 1:
            break
        plan.append((lane_no, size))
        room -= size
    return plan


def _next_sizes(open_lanes: dict[int, str], found: list[Item], need: int, partitions: int) -> dict[int, int]:
    """How much of each partition the next round reads, those holding the page back most first.

    With fewer than `need` found, every open partition reads its share of what is missing.
    Otherwise only the partitions read down to a point newer than the `need`-th newest found
    (`kth`) may hold more of the page: each reads what a partition holds on average between
    `kth` and its own last item (ids spread items evenly), plus one."""
    order = sorted(open_lanes, key=lambda n: open_lanes[n], reverse=True)
    if len(found) < need:
        share = math.ceil((need - len(found)) / len(order)) + 1
        return dict.fromkeys(order, share)
    kth = _sort_key(found[need - 1])
    sizes = {}
    for lane_no in order:
        last = open_lanes[lane_no]
        if last <= kth:
            break
        between = sum(1 for item in found[:need] if _sort_key(item) < last)
        sizes[lane_no] = math.ceil(between / partitions) + 1
    return sizes


def _reader(fetch: Fetch, lane_no: int, resume: Any, size: int) -> Callable[[], Chunk]:
    return lambda: fetch(lane_no, resume, size)


def merge_bases(merged: Sequence[tuple[list[Item], str | None]], need: int) -> tuple[list[Item], str | None]:
    """The `need` newest items of several bases, each merged from its own shards on its own
    budget (`merge_newest`'s answers), and the point the page stops at when one of them
    ended early: what is newer than every base's stop point is whole."""
    stops = [stop for _, stop in merged if stop is not None]
    frontier = max(stops) if stops else None
    items = sorted((item for found, _ in merged for item in found), key=_sort_key, reverse=True)
    if frontier is not None:
        items = [item for item in items if _sort_key(item) >= frontier]
    items = items[:need]
    return items, (frontier if frontier is not None and len(items) < need else None)
