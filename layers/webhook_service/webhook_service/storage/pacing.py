"""The slots of configs with a `rate_limit`: each item hands out its config's next slot with
one conditional UpdateItem and no read, exact across every deliver instance at once
(docs/design.md §19.1).

An item (`storage.keys.pace_key`) holds `tat`, the first free slot (unix microseconds). A
delivery takes a slot by one of two writes, each atomic:

- idle (`tat` absent or past): `SET tat = now + interval`, if `tat < now`; its slot is now;
- busy: `SET tat = tat + interval`, if `tat >= now`; its slot is the `tat` it found.

A refused write returns the item as it stood, which says which write to make instead; since
`tat` only moves forward, the busy write cannot be refused after the idle one was, so a slot
costs three writes at most. Which write comes first is guessed from the `tat` this process
last saw for the item (a refused write costs a write unit too): a config with a backlog is
busy, one delivery now and then finds it idle; so a slot costs one write nearly always.
"""

from __future__ import annotations

from typing import Any

from webhook_service.errors import ConflictError
from webhook_service.storage.keys import pace_key
from webhook_service.storage.table import Table

WRITES_PER_SLOT = 3
# An item outlives its last write this long (TTL): longer than a job can wait (SQS keeps one 14 days).
KEEP_SECONDS = 15 * 86_400
REMEMBERED_ITEMS = 1_000  # pacing items whose last `tat` a process keeps, to guess the first write


class Pacing:
    """Hands out delivery slots of paced configs."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._seen: dict[str, int] = {}  # PK -> the latest `tat` this process saw there

    def take_slot(self, organisation: str, config_id: str, shard: int, interval_us: int, now_us: int) -> int:
        """The next free slot of one of a config's items, taken: unix microseconds, `now_us`
        or later, `interval_us` after the slot taken before it."""
        key = pace_key(organisation, config_id, shard)
        busy = self._seen.get(key["PK"], 0) >= now_us
        for _ in range(WRITES_PER_SLOT):
            try:
                if busy:
                    stored = self._write(key, "SET tat = tat + :i, expires_at = :e", "tat >= :now", interval_us, now_us)
                    self._remember(key, int(stored["tat"]))
                    return int(stored["tat"]) - interval_us
                self._write(
                    key,
                    "SET tat = :now + :i, expires_at = :e",
                    "attribute_not_exists(tat) OR tat < :now",
                    interval_us,
                    now_us,
                )
                self._remember(key, now_us + interval_us)
                return now_us
            except ConflictError as exc:
                stored_tat = int((exc.item or {}).get("tat", 0))
                self._remember(key, stored_tat)
                busy = stored_tat >= now_us
        raise ConflictError("a pacing slot was not taken in three writes")

    def _remember(self, key: dict[str, Any], tat: int) -> None:
        if len(self._seen) >= REMEMBERED_ITEMS:
            self._seen.clear()  # a process paces few configs at once: starting over costs a write each
        self._seen[key["PK"]] = tat

    def _write(
        self, key: dict[str, Any], expression: str, condition: str, interval_us: int, now_us: int
    ) -> dict[str, Any]:
        return self.table.update(
            key,
            expression,
            ConditionExpression=condition,
            ExpressionAttributeValues={
                ":i": interval_us,
                ":now": now_us,
                ":e": now_us // 1_000_000 + KEEP_SECONDS,
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
