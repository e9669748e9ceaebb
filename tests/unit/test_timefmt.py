"""Datetimes on the wire: ISO 8601 UTC, microseconds, `Z`, fixed width."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from webhook_service.timefmt import format_datetime, parse_datetime, utcnow

WIRE_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def test_format_datetime_utc_value_is_iso_with_microseconds_and_z() -> None:
    value = dt.datetime(2026, 11, 27, 18, 22, 49, 123456, tzinfo=dt.UTC)

    assert format_datetime(value) == "2026-11-27T18:22:49.123456Z"


def test_format_datetime_whole_second_keeps_six_digit_fraction() -> None:
    assert format_datetime(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)) == "2026-01-02T03:04:05.000000Z"


def test_format_datetime_offset_value_is_converted_to_utc() -> None:
    value = dt.datetime(2026, 11, 27, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))

    assert format_datetime(value) == "2026-11-27T18:00:00.000000Z"


def test_format_datetime_year_below_1000_keeps_fixed_width() -> None:
    assert format_datetime(dt.datetime(999, 1, 1, tzinfo=dt.UTC)) == "0999-01-01T00:00:00.000000Z"


def test_format_datetime_utcnow_matches_wire_format() -> None:
    assert WIRE_FORMAT.match(format_datetime(utcnow()))


def test_parse_datetime_wire_format_round_trips() -> None:
    text = "2026-11-27T18:22:49.123456Z"

    assert format_datetime(parse_datetime(text)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T20:22:49+02:00", dt.datetime(2026, 11, 27, 18, 22, 49, tzinfo=dt.UTC)),
        ("2026-11-27T13:22:49-05:00", dt.datetime(2026, 11, 27, 18, 22, 49, tzinfo=dt.UTC)),
        ("2026-11-28T00:30:00+05:30", dt.datetime(2026, 11, 27, 19, 0, tzinfo=dt.UTC)),
        ("2026-11-27T18:22:49z", dt.datetime(2026, 11, 27, 18, 22, 49, tzinfo=dt.UTC)),
    ],
)
def test_parse_datetime_with_offset_converts_to_utc(text: str, expected: dt.datetime) -> None:
    parsed = parse_datetime(text)

    assert parsed == expected
    assert parsed.utcoffset() == dt.timedelta(0)


def test_parse_datetime_naive_value_is_taken_as_utc() -> None:
    assert parse_datetime("2026-11-27T18:22:49") == dt.datetime(2026, 11, 27, 18, 22, 49, tzinfo=dt.UTC)


def test_parse_datetime_date_is_midnight_utc() -> None:
    assert parse_datetime("2026-11-27") == dt.datetime(2026, 11, 27, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "yesterday", "2026-13-01", "2026-11-27T25:00:00Z", "9999-12-31T23:59:59-01:00", "2" * 65],
)
def test_parse_datetime_malformed_or_out_of_range_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - ValueError is the whole contract
        parse_datetime(text)
