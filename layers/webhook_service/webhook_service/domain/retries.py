"""When an event's next attempt is due: the retry schedule, its jitter, and a receiver's wish."""

from __future__ import annotations

import datetime as dt

MAX_ATTEMPTS = 5
# When attempt n+1 is due after attempt n failed (docs/design.md §7.10): 1 min, 10 min, 1 h, 3 h.
RETRY_DELAYS = (dt.timedelta(minutes=1), dt.timedelta(minutes=10), dt.timedelta(hours=1), dt.timedelta(hours=3))
RETRY_JITTER = 0.1  # each delay is moved by up to ±10%, so receivers are not hit in waves


def retry_delay(attempt: int, gone: bool, retry_after: dt.timedelta | None, jitter: float) -> dt.timedelta | None:
    """How long after failed attempt `attempt` (1-based) the next one is due, or None when
    the event has had its last attempt or the receiver said it is gone.

    `jitter` is a number in [-1, 1] (random in production, fixed in tests). A `retry_after`
    the receiver asked for can push the next attempt later than the schedule, up to the
    schedule's longest delay, never earlier. Which answers mean "gone" and which carry a
    delay is the HTTP side's business (webhook_service.httpcodes).
    """
    if attempt >= MAX_ATTEMPTS or gone:
        return None
    delay = RETRY_DELAYS[attempt - 1] * (1 + RETRY_JITTER * max(-1.0, min(1.0, jitter)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_DELAYS[-1]))
    return delay


def longest_retry_delay(attempt: int) -> dt.timedelta:
    """The longest delay the schedule alone can put after failed attempt `attempt` (the top
    of its jitter), before the due time is rounded up to a whole second."""
    return RETRY_DELAYS[attempt - 1] * (1 + RETRY_JITTER)
