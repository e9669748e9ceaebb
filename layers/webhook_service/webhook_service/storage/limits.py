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
`tat` refuses is refused with no request at all (a flood past the limit costs storage one
write per interval, not one per request), and a rate the operator changed is learned from
the next answer (the request that learns it was judged with the rate known before).
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
        self._lock = threading.Lock()

    def _remember(self, organisation: str, name: str, tat: int, rate: Rate) -> None:
        with self._lock:
            if len(self._seen) >= REMEMBERED:
                self._seen.clear()  # forgetting only costs a write: the table holds the truth
            previous = self._seen.get((organisation, name), (0, rate))[0]
            self._seen[(organisation, name)] = (max(previous, tat), rate)

    def take(self, organisation: str, name: str, now: dt.datetime) -> Admission:
        """Admit one request of `name` at `now`, moving the stored `tat` on, or refuse it."""
        now_us = _microseconds(now)
        with self._lock:
            tat, rate = self._seen.get((organisation, name), (0, DEFAULT_RATES[name]))
        if is_refused(rate, now_us, tat):
            return refused(name, rate, now_us, tat)
        for _ in range(WRITES_PER_REQUEST):
            try:
                stored = (
                    self._start(organisation, name, now_us, rate)
                    if tat < now_us
                    else self._add(organisation, name, now_us, rate)
                )
            except ConflictError as exc:
                tat, rate = int((exc.item or {}).get("tat", 0)), _rate_of(exc.item, name)
                self._remember(organisation, name, tat, rate)
                if is_refused(rate, now_us, tat):
                    return refused(name, rate, now_us, tat)
                continue  # idle after all, or busy with room: the other write
            tat, rate = int(stored["tat"]), _rate_of(stored, name)
            self._remember(organisation, name, tat, rate)
            return admitted(name, rate, now_us, tat)
        # Other processes kept moving `tat` between this one's reads of it: that is a flood.
        return refused(name, rate, now_us, max(tat, now_us + rate.tolerance_us + 1))

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
