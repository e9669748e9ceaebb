"""Each organisation's rates, kept by GCRA on one item per rate (`LIMIT#<org>`, `RATE#<name>`):
at most two conditional UpdateItems per request and no read, exact across processes.

The item holds `tat` (microseconds since the epoch) and, when the operator set one, the
organisation's own `per_second` and `burst`. A request is admitted by one of two writes:

- idle (`tat` absent or in the past): `SET tat = now + interval`, if `tat < now`;
- busy: `SET tat = tat + interval`, if `now <= tat <= now + tolerance`.

Each is atomic, so concurrent requests in any number of processes are counted exactly. A
refused write returns the item as it stood (`ReturnValuesOnConditionCheckFailure`), which
says whether to try the other write or refuse. Each store remembers the latest `tat` and
rate it saw per organisation: `tat` only moves forward, so a request that the remembered
`tat` refuses is refused with no request at all, and a rate the operator changed is learned
from the next answer (the request that learns it was judged with the rate known before). A
store that sees other processes take the slots waits a little longer before asking again
(`_keep_quiet`), so that a flood from many instances costs storage about one write per slot
rather than one per request (docs/design.md §18.1).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from webhook_service.domain.limits import (
    DEFAULT_RATES,
    Admission,
    Rate,
    admitted,
    is_refused,
    refused,
)
from webhook_service.errors import ConflictError
from webhook_service.storage.codec import Item
from webhook_service.storage.keys import rate_key
from webhook_service.storage.table import Table

WRITES_PER_REQUEST = 3  # at most: idle and busy, and once more when another process moved `tat` between them
REMEMBERED = 4096  # (organisation, rate) pairs a store remembers; past that it starts again
DEFER_SLOTS = 10  # intervals a process that saw others take the slots waits, at most, beyond the next
DEFER_AT_MOST_US = 1_000_000  # and never more than a second (a refusal's Retry-After is at least that)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _microseconds(now: dt.datetime) -> int:
    """Exactly (a float timestamp can be a microsecond off)."""
    return (now - _EPOCH) // dt.timedelta(microseconds=1)


def _rate_of(item: Item | None, name: str) -> Rate:
    """The rate an item names (the operator's), else the default."""
    if item and isinstance(item.get("per_second"), int) and isinstance(item.get("burst"), int):
        return Rate(per_second=int(item["per_second"]), burst=int(item["burst"]))
    return DEFAULT_RATES[name]


class RateLimits:
    """Takes one request's worth of an organisation's rate, or refuses it."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._seen: dict[tuple[str, str], tuple[int, Rate]] = {}
        self._quiet: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def _remember(self, organisation: str, name: str, tat: int, rate: Rate) -> None:
        with self._lock:
            if len(self._seen) >= REMEMBERED:
                self._seen.clear()  # forgetting only costs a write: the table holds the truth
                self._quiet.clear()
            previous = self._seen.get((organisation, name), (0, rate))[0]
            self._seen[(organisation, name)] = (max(previous, tat), rate)

    def take(self, organisation: str, name: str, now: dt.datetime) -> Admission:
        """Admit one request of `name` at `now`, moving the stored `tat` on, or refuse it."""
        now_us = _microseconds(now)
        with self._lock:
            tat, rate = self._seen.get((organisation, name), (0, DEFAULT_RATES[name]))
            quiet = self._quiet.get((organisation, name), 0)
        if is_refused(rate, now_us, tat) or now_us < quiet:
            return refused(name, rate, now_us, max(tat, now_us + rate.tolerance_us + 1))
        for _ in range(WRITES_PER_REQUEST):
            try:
                stored = (
                    self._start(organisation, name, now_us, rate)
                    if tat < now_us
                    else self._add(organisation, name, now_us, rate)
                )
            except ConflictError as exc:
                before = tat
                tat, rate = int((exc.item or {}).get("tat", 0)), _rate_of(exc.item, name)
                self._remember(organisation, name, tat, rate)
                if is_refused(rate, now_us, tat):
                    self._keep_quiet(organisation, name, rate, before, tat)
                    return refused(name, rate, now_us, tat)
                continue  # idle after all, or busy with room: the other write
            tat, rate = int(stored["tat"]), _rate_of(stored, name)
            self._remember(organisation, name, tat, rate)
            return admitted(name, rate, now_us, tat)
        # Other processes kept moving `tat` between this one's reads of it: that is a flood.
        return refused(name, rate, now_us, max(tat, now_us + rate.tolerance_us + 1))

    def _keep_quiet(self, organisation: str, name: str, rate: Rate, before: int, tat: int) -> None:
        """After a refusal that showed other processes taking the slots since this one last
        looked (`tat` moved from `before` by more than one request's worth), wait for more than
        the next slot before asking again: one of them will take it. Those processes flood;
        the slots they leave are taken by the next to ask, and every refusal is still one the
        stored `tat` would give, at most DEFER_SLOTS intervals (and DEFER_AT_MOST) late."""
        others = (tat - before) // rate.interval_us - 1 if before else 0
        extra = min(max(others, 0) * rate.interval_us, DEFER_SLOTS * rate.interval_us, DEFER_AT_MOST_US)
        with self._lock:
            self._quiet[(organisation, name)] = tat - rate.tolerance_us + extra

    def _write(self, organisation: str, name: str, expression: str, condition: str, values: Item) -> Item:
        return self.table.update(
            rate_key(organisation, name),
            expression,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def _start(self, organisation: str, name: str, now_us: int, rate: Rate) -> Item:
        """The first request after the bucket ran empty (or ever)."""
        return self._write(
            organisation,
            name,
            "SET tat = :next",
            "attribute_not_exists(tat) OR tat < :now",
            {":next": now_us + rate.interval_us, ":now": now_us},
        )

    def _add(self, organisation: str, name: str, now_us: int, rate: Rate) -> Item:
        """One more request while the bucket still holds some."""
        return self._write(
            organisation,
            name,
            "SET tat = tat + :interval",
            "tat BETWEEN :now AND :ceiling",
            {":interval": rate.interval_us, ":now": now_us, ":ceiling": now_us + rate.tolerance_us},
        )

    # -- the operator's ----------------------------------------------------------------------

    def set_rate(self, organisation: str, name: str, rate: Rate | None) -> None:
        """Give an organisation its own rate (None: the default again). The next answer of
        each process's next request carries it."""
        key = rate_key(organisation, name)
        if rate is None:
            self.table.update(key, "REMOVE per_second, burst")
            return
        self.table.update(
            key,
            "SET per_second = :per_second, burst = :burst",
            ExpressionAttributeValues={":per_second": rate.per_second, ":burst": rate.burst},
        )

    def rate(self, organisation: str, name: str) -> Rate:
        """The rate an organisation has now (its own or the default), read from the table."""
        return _rate_of(self.table.get(rate_key(organisation, name)), name)

    def rates(self, organisation: str) -> dict[str, Any]:
        """Every rate of an organisation, as the operator command line prints them."""
        return {
            name: {"per_second": rate.per_second, "burst": rate.burst}
            for name, rate in ((n, self.rate(organisation, n)) for n in DEFAULT_RATES)
        }
