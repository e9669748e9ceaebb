"""What a receiver's HTTP answer means for an event's retries (docs/design.md §7.10).

The domain states its retry rule in its own terms (gone or not, a delay asked for or not);
this module reads the HTTP status and `Retry-After` header into those terms.
"""

from __future__ import annotations

import datetime as dt

from webhook_service.domain.retries import RETRY_DELAYS, retry_delay

RETRY_AFTER_STATUSES = (429, 503)
GONE_STATUS = 410
RETRY_AFTER_MAX_CHARS = 64  # an HTTP-date is 29 characters; a longer Retry-After is not one we read


def is_gone(status_code: int | None) -> bool:
    """Whether a receiver's status says the endpoint is gone (the config is deactivated)."""
    return status_code == GONE_STATUS


def parse_retry_after(value: str | None, now: dt.datetime) -> dt.timedelta | None:
    """A receiver's `Retry-After` header as a delay, or None when it cannot be read; never
    raises, whatever the receiver sent.

    Read: at most 64 characters (after trimming spaces) of delta-seconds (ASCII digits) or an
    HTTP-date. A delay is capped at the schedule's longest (RETRY_DELAYS[-1]): a receiver can
    push its next attempt to that and no further, so a number past timedelta's range (or
    int()'s 4,300 digits) is never converted. A date in the past means no delay.
    """
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > RETRY_AFTER_MAX_CHARS:
        return None
    cap = RETRY_DELAYS[-1]
    if value.isascii() and value.isdigit():
        digits = value.lstrip("0")
        if len(digits) > len(str(int(cap.total_seconds()))):
            return cap
        return min(dt.timedelta(seconds=int(value)), cap)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        delay = when - now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(delay, dt.timedelta(0)), cap)


def delay_for_answer(
    attempt: int, status_code: int | None, retry_after: dt.timedelta | None, jitter: float
) -> dt.timedelta | None:
    """The domain's retry delay (`domain.retries.retry_delay`) after an HTTP answer: 410
    means gone, and a `Retry-After` counts only on 429 and 503."""
    return retry_delay(
        attempt,
        is_gone(status_code),
        retry_after if status_code in RETRY_AFTER_STATUSES else None,
        jitter,
    )
