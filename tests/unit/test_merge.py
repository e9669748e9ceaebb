"""The merge of a sharded list (storage.merge), without DynamoDB: partitions are sorted lists
read as a Query reads them (a Limit counts items read before the filter, a resume point)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from webhook_service.storage.codec import Item
from webhook_service.storage.merge import MERGE_SLACK, Chunk, merge_bases, merge_newest


class Partitions:
    """Sorted partitions (newest first) behind a `Fetch`, counting what is read."""

    def __init__(self, partitions: list[list[Item]], below: str | None = None, keep: str | None = None) -> None:
        self.partitions = [[i for i in p if below is None or i["CreatedSK"] < below] for p in partitions]
        self.keep = keep  # a filter: only items whose "kind" is this match
        self.read = 0
        self.calls = 0

    def fetch(self, shard: int, resume: Any, size: int) -> Chunk:
        assert size >= 1
        self.calls += 1
        rows = self.partitions[shard]
        start = 0 if resume is None else resume
        taken = rows[start : start + size]
        self.read += len(taken)
        end = start + len(taken)
        more = len(taken) == size  # DynamoDB names a resume point whenever the Limit is reached
        matches = [i for i in taken if self.keep is None or i["kind"] == self.keep]
        return Chunk(matches, len(taken), taken[-1]["CreatedSK"] if more else None, end if more else None)


def make(n: int, shards: int, rng: random.Random, skew: float = 0.0) -> list[list[Item]]:
    parts: list[list[Item]] = [[] for _ in range(shards)]
    for k in range(n):
        item = {"CreatedSK": f"{k:08d}#id{k}", "id": f"id{k}", "kind": rng.choice("ab")}
        shard = 0 if rng.random() < skew else rng.randrange(shards)
        parts[shard].append(item)
    for p in parts:
        p.sort(key=lambda i: i["CreatedSK"], reverse=True)
    return parts


def newest(parts: list[list[Item]], keep: str | None = None) -> list[Item]:
    every = sorted((i for p in parts for i in p), key=lambda i: i["CreatedSK"], reverse=True)
    return [i for i in every if keep is None or i["kind"] == keep]


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("need", [1, 2, 11, 101, 1001])
def test_a_page_is_the_newest_items_and_reads_within_its_bound(seed: int, need: int) -> None:
    rng = random.Random(seed * 7919 + need)
    shards = rng.choice([2, 5, 32])
    parts = make(rng.randrange(0, 3 * need + 40), shards, rng)
    source = Partitions(parts)
    items, stop = merge_newest(shards, need, source.fetch)
    assert source.read <= need + shards * MERGE_SLACK
    expected = newest(parts)[:need]
    if stop is None:
        assert items == expected
    else:  # ended early: a prefix, and every item newer than the stop point
        assert items == expected[: len(items)]
        assert all(i["CreatedSK"] >= stop for i in items)
        assert all(i["CreatedSK"] < stop for i in newest(parts)[len(items) :])


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("skew", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("keep", [None, "a"])
def test_paging_through_returns_every_match_once_in_order(seed: int, skew: float, keep: str | None) -> None:
    """Pages chained as the API chains them (each starts below the last page's last item, or
    below its stop point) give every match once, however unevenly the shards fill."""
    rng = random.Random(seed)
    shards, need = 32, 11
    parts = make(600, shards, rng, skew=skew)
    seen: list[Item] = []
    below: str | None = None
    for _ in range(2000):  # bounded: each page moves `below` down
        source = Partitions(parts, below=below, keep=keep)
        items, stop = merge_newest(shards, need, source.fetch)
        assert source.read <= need + shards * MERGE_SLACK
        if stop is None and len(items) < need:
            seen.extend(items)
            break
        page = items[: need - 1]
        seen.extend(page)
        below = page[-1]["CreatedSK"] if len(page) == need - 1 else stop
        assert below is not None
    else:
        pytest.fail("paging did not end")
    assert seen == newest(parts, keep)


def test_one_shard_holding_every_item_is_read_as_deep_as_the_page_needs() -> None:
    rng = random.Random(1)
    parts = make(5000, 32, rng, skew=1.0)
    source = Partitions(parts)
    items, stop = merge_newest(32, 1001, source.fetch)
    assert stop is None
    assert items == newest(parts)[:1001]
    assert source.read <= 1001 + 32 * MERGE_SLACK


def test_a_page_ends_early_at_its_budget_when_one_shard_holds_the_newest() -> None:
    """Shard 0 holds the 2,000 newest items, every other shard older ones: the page cannot be
    whole within its budget, so it ends with the items newer than its stop point."""
    parts: list[list[Item]] = [[] for _ in range(32)]
    for k in range(2000, 4000):
        parts[0].append({"CreatedSK": f"{k:08d}#id{k}", "id": f"id{k}", "kind": "a"})
    for k in range(2000):
        parts[1 + k % 31].append({"CreatedSK": f"{k:08d}#id{k}", "id": f"id{k}", "kind": "a"})
    for p in parts:
        p.sort(key=lambda i: i["CreatedSK"], reverse=True)
    source = Partitions(parts)
    items, stop = merge_newest(32, 1001, source.fetch)
    assert source.read <= 1001 + 32 * MERGE_SLACK
    assert stop is not None
    assert 0 < len(items) < 1001
    assert items == newest(parts)[: len(items)]
    assert stop == items[-1]["CreatedSK"]


def test_an_even_spread_fills_a_page_of_1000_in_a_few_rounds() -> None:
    rng = random.Random(2)
    parts = make(20_000, 32, rng)
    rounds: list[int] = []

    def counting(calls: Any) -> list[Chunk]:
        rounds.append(len(calls))
        return [call() for call in calls]

    source = Partitions(parts)
    items, stop = merge_newest(32, 1001, source.fetch, counting)
    assert stop is None
    assert items == newest(parts)[:1001]
    assert len(rounds) <= 6, rounds
    assert rounds[0] == 32


def test_empty_partitions_give_an_empty_page() -> None:
    source = Partitions([[] for _ in range(32)])
    assert merge_newest(32, 11, source.fetch) == ([], None)
    assert source.calls == 32


def test_states_of_very_different_sizes_merged_each_on_its_own_budget_give_a_whole_page() -> None:
    """A plain list of events merges 16 shards of each state: `delivered` holds most items,
    `failed` some, `pending` few. Merged as one, the 48 shards share one budget and the page
    ends early; merged state by state, each on its own budget, then together, it is whole."""
    rng = random.Random(3)
    states: list[list[list[Item]]] = [[[] for _ in range(16)] for _ in range(3)]
    for k in range(30_000):
        state = rng.choices([0, 1, 2], weights=[80, 15, 5])[0]  # delivered, failed, pending
        states[state][rng.randrange(16)].append({"CreatedSK": f"{k:08d}#id{k}", "id": f"id{k}", "kind": "a"})
    for shards in states:
        for p in shards:
            p.sort(key=lambda i: i["CreatedSK"], reverse=True)
    every = [p for shards in states for p in shards]

    _, one_stop = merge_newest(48, 1001, Partitions(every).fetch)
    sources = [Partitions(shards) for shards in states]
    items, stop = merge_bases([merge_newest(16, 1001, source.fetch) for source in sources], 1001)

    assert one_stop is not None  # one budget for all: the page ended early
    assert stop is None
    assert items == newest(every)[:1001]
    assert all(source.read <= 1001 + 16 * MERGE_SLACK for source in sources)
