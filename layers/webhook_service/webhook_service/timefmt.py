"""Datetimes as the API writes and reads them: ISO 8601 UTC with microseconds and a `Z`."""

from __future__ import annotations

import datetime as dt

UTC = dt.UTC


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


def format_datetime(value: dt.datetime) -> str:
    """`2026-11-27T18:22:49.123456Z`: fixed width, so strings sort as the instants do."""
    value = value.astimezone(UTC)
    # %Y is not zero-padded below year 1000 on every platform; the width must stay fixed.
    return f"{value.year:04d}" + value.strftime("-%m-%dT%H:%M:%S.%fZ")


def parse_datetime(text: str) -> dt.datetime:
    """Parse an ISO datetime or date given by a user; naive values are taken as UTC.

    Raises ValueError for anything else.
    """
    text = text.strip()
    if not text or len(text) > 64:
        raise ValueError("empty or too long")
    if len(text) == 10:
        day = dt.date.fromisoformat(text)
        return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    value = dt.datetime.fromisoformat(text.replace("z", "Z"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past datetime.max in UTC
        raise ValueError("out of range") from None
