"""Fair use: each organisation's rates (API requests, resends, queued tests) by the generic
cell rate algorithm, and its cap on configs (docs/design.md §18).

GCRA keeps one number per rate, the theoretical arrival time (`tat`): when the bucket would
be empty again if nothing more came. A request at `now` is admitted when, after it, the
bucket holds at most `burst` requests' worth: `max(tat, now) + interval <= now + burst *
interval`. Admitting moves `tat` on by one interval; refusing changes nothing. `tat` only
ever moves forward, so a `tat` seen once is a lower bound of the stored one: a request that
it already refuses is refused without asking storage.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

MICROSECONDS = 1_000_000

RATE_API = "api"  # every authenticated API request
RATE_RESENDS = "resends"  # POST /events/{id}/resend that reach the write
RATE_TESTS = "tests"  # test tasks queued by create, update or the test action
RATE_NAMES = (RATE_API, RATE_RESENDS, RATE_TESTS)

MAX_CONFIGS = 1000  # configs not deactivated, per organisation
# Requests that arrived before another's write landed, or within this long after it, were made
# at once with it: of resends of one event, or rotations of one config, made at once, one wins.
AT_ONCE = dt.timedelta(seconds=1)
MAX_RATE = 100_000  # the most an operator may set, per second or at once


@dataclass(frozen=True)
class Rate:
    """`per_second` sustained, `burst` at once (both whole numbers, at least 1)."""

    per_second: int
    burst: int

    @property
    def interval_us(self) -> int:
        """The time one request's worth takes to come back, in microseconds."""
        return max(1, round(MICROSECONDS / self.per_second))

    @property
    def tolerance_us(self) -> int:
        """How far `tat` may run ahead of now and still admit one more request."""
        return (self.burst - 1) * self.interval_us


DEFAULT_RATES = {
    RATE_API: Rate(per_second=50, burst=100),
    RATE_RESENDS: Rate(per_second=10, burst=10),
    RATE_TESTS: Rate(per_second=10, burst=10),
}


@dataclass(frozen=True)
class Admission:
    """A rate's answer to one request, and what the RateLimit header fields say: `limit`
    (the burst), `remaining` (requests that would be admitted now), `reset_seconds` (until
    the bucket is full again) and, when refused, `retry_after_seconds` (until one more
    request would be admitted; at least 1)."""

    allowed: bool
    name: str
    rate: Rate
    remaining: int
    reset_seconds: int
    retry_after_seconds: int = 0

    @property
    def limit(self) -> int:
        return self.rate.burst


def _whole_seconds(microseconds: int) -> int:
    return max(0, math.ceil(microseconds / MICROSECONDS))


def admitted(name: str, rate: Rate, now_us: int, new_tat: int) -> Admission:
    """The admission of a request that moved `tat` to `new_tat`."""
    room = now_us + rate.burst * rate.interval_us - new_tat
    return Admission(
        allowed=True,
        name=name,
        rate=rate,
        remaining=max(0, min(rate.burst, room // rate.interval_us)),
        reset_seconds=_whole_seconds(new_tat - now_us),
    )


def refused(name: str, rate: Rate, now_us: int, tat: int) -> Admission:
    """The refusal of a request at `now_us` while `tat` is as given (beyond the tolerance)."""
    return Admission(
        allowed=False,
        name=name,
        rate=rate,
        remaining=0,
        reset_seconds=_whole_seconds(tat - now_us),
        retry_after_seconds=max(1, _whole_seconds(tat - rate.tolerance_us - now_us)),
    )


def is_refused(rate: Rate, now_us: int, tat: int) -> bool:
    """Whether a request at `now_us` is refused while `tat` is at least as given."""
    return tat > now_us + rate.tolerance_us


def valid_rate(value: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_RATE
