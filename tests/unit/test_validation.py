"""Validation of bodies, fields, receiver URLs and list queries: every failure is a 400."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from webhook_service.domain.events import is_event_name
from webhook_service.domain.queries import DEFAULT_LIMIT
from webhook_service.errors import InvalidBodyError, InvalidParameterError
from webhook_service.validation import (
    ANY_ID,
    ANY_NAME,
    MAX_BODY_BYTES,
    check_fields,
    parse_json_body,
    parse_list_query,
    validate_url,
)

STATES = ("new", "valid", "invalid", "deactivated")
CONFIG_FILTERS: dict[str, tuple[str, ...] | str] = {"state": STATES}
TASK_FILTERS: dict[str, tuple[str, ...] | str] = {"type": ("webhook_config.test",), "target": ANY_ID, "state": STATES}


# -- parse_json_body -------------------------------------------------------------------------


def test_parse_json_body_object_is_returned() -> None:
    assert parse_json_body(b'{"url": "https://h.example/x"}') == {"url": "https://h.example/x"}


@pytest.mark.parametrize("raw", [None, b"", b"  \n", b"null", b" null "])
def test_parse_json_body_absent_empty_or_null_is_empty_object(raw: bytes | None) -> None:
    assert parse_json_body(raw) == {}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"url": "https://h.example/x",}',  # trailing comma
        b"{url: 1}",
        b"{",
        b'{"a": 1} {"b": 2}',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1, "a": 2}',  # duplicate keys
        b'{"a": "\xff"}',  # not UTF-8
    ],
)
def test_parse_json_body_malformed_json_raises_invalid_body(raw: bytes) -> None:
    with pytest.raises(InvalidBodyError):
        parse_json_body(raw)


@pytest.mark.parametrize("raw", [b"[]", b'[{"url": "https://h.example"}]', b'"url"', b"42", b"true"])
def test_parse_json_body_non_object_raises_invalid_body(raw: bytes) -> None:
    with pytest.raises(InvalidBodyError, match="must be a JSON object"):
        parse_json_body(raw)


def test_parse_json_body_exactly_16_kib_is_accepted() -> None:
    raw = b'{"a":"' + b"x" * (MAX_BODY_BYTES - 8) + b'"}'
    assert len(raw) == 16 * 1024

    assert parse_json_body(raw) == {"a": "x" * (MAX_BODY_BYTES - 8)}


def test_parse_json_body_over_16_kib_raises_invalid_body() -> None:
    raw = b'{"a":"' + b"x" * (MAX_BODY_BYTES - 7) + b'"}'

    with pytest.raises(InvalidBodyError, match="larger than"):
        parse_json_body(raw)


def test_parse_json_body_deeply_nested_raises_invalid_body() -> None:
    raw = b'{"a":' + b"[" * 8000 + b"]" * 8000 + b"}"

    with pytest.raises(InvalidBodyError):
        parse_json_body(raw)


# -- check_fields --------------------------------------------------------------------------------


def test_check_fields_allowed_and_required_present_passes() -> None:
    check_fields({"url": "x"}, allowed=("url", "state"), required=("url",))


def test_check_fields_unknown_field_is_named_in_params() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        check_fields({"url": "x", "secret": "mine"}, allowed=("url",))

    assert caught.value.params == {"secret": "unknown field"}


def test_check_fields_missing_field_is_named_in_params() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        check_fields({}, allowed=("url",), required=("url",))

    assert caught.value.params == {"url": "required"}


def test_check_fields_unknown_and_missing_are_both_named() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        check_fields({"uri": "x"}, allowed=("url",), required=("url",))

    assert caught.value.params == {"uri": "unknown field", "url": "required"}


def test_check_fields_nothing_allowed_refuses_any_field() -> None:
    with pytest.raises(InvalidParameterError):
        check_fields({"anything": None}, allowed=())


# -- validate_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://receiver.example/hooks",
        "https://receiver.example",
        "https://receiver.example:8443/hooks/?a=1&b=2",
        "https://sub.receiver.example./x",
        "https://[2001:db8::1]/x",
    ],
)
def test_validate_url_absolute_https_is_returned_unchanged(url: str) -> None:
    assert validate_url(url, allow_http=False) == url


def test_validate_url_http_without_allow_http_is_refused() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        validate_url("http://receiver.example/hooks", allow_http=False)

    assert caught.value.params == {"url": "must be an absolute https URL"}


def test_validate_url_http_with_allow_http_is_accepted() -> None:
    assert validate_url("http://127.0.0.1:8080/hooks", allow_http=True) == "http://127.0.0.1:8080/hooks"


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@receiver.example/hooks",
        "https://user@receiver.example/hooks",
        "https://receiver.example/hooks#part",
        "https://receiver.example/hooks#",
        "https:///hooks",
        "https://",
        "https://receiver.example/" + "a" * 2048,
        "https://receiver.example/a b",
        "https://receiver.example/\thooks",
        "https://reçeiver.example/hooks",
        "https://receiver.example/ünïcode",
        "/hooks",
        "receiver.example/hooks",
        "//receiver.example/hooks",
        "ftp://receiver.example/hooks",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https://receiver.example:99999/x",
        "https://receiver.example:0/x",
        "https://bad_host.example/x",
        "https://-dash.example/x",
        "",
    ],
)
def test_validate_url_unacceptable_url_is_refused_naming_url(url: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        validate_url(url, allow_http=True)

    assert set(caught.value.params or {}) == {"url"}


@pytest.mark.parametrize("value", [None, 42, ["https://receiver.example"], {"url": "https://receiver.example"}])
def test_validate_url_non_string_is_refused_naming_url(value: object) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        validate_url(value, allow_http=False)

    assert set(caught.value.params or {}) == {"url"}


def test_validate_url_exactly_2048_characters_is_accepted() -> None:
    url = "https://receiver.example/"
    url += "a" * (2048 - len(url))

    assert validate_url(url, allow_http=False) == url


# -- parse_list_query --------------------------------------------------------------------------


def test_parse_list_query_no_parameters_gives_defaults() -> None:
    query = parse_list_query({}, CONFIG_FILTERS)

    assert (query.limit, query.filters, query.date_bounds, query.after_id, query.before_id) == (
        DEFAULT_LIMIT,
        {},
        {},
        None,
        None,
    )


@pytest.mark.parametrize("limit", ["1", "10", "1000"])
def test_parse_list_query_limit_within_bounds_is_accepted(limit: str) -> None:
    assert parse_list_query({"limit": limit}, CONFIG_FILTERS).limit == int(limit)


@pytest.mark.parametrize(
    "limit",
    ["0", "1001", "-1", "", "ten", "1.5", " 5", "1e3", "\u00b2", "\uff11\uff10"],  # superscript 2, fullwidth 10
)
def test_parse_list_query_limit_out_of_bounds_or_not_a_number_is_refused(limit: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_list_query({"limit": limit}, CONFIG_FILTERS)

    assert set(caught.value.params or {}) == {"limit"}


@pytest.mark.parametrize("cursor", ["after_id", "before_id"])
def test_parse_list_query_cursor_uuid_is_accepted(cursor: str) -> None:
    cursor_id = str(uuid.uuid4())

    query = parse_list_query({cursor: cursor_id}, CONFIG_FILTERS)

    assert getattr(query, cursor) == cursor_id


@pytest.mark.parametrize("cursor", ["after_id", "before_id"])
def test_parse_list_query_cursor_not_uuid_is_refused_naming_it(cursor: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_list_query({cursor: "12"}, CONFIG_FILTERS)

    assert caught.value.params == {cursor: "must be an id"}


def test_parse_list_query_unknown_parameter_is_refused_naming_it() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_list_query({"colour": "blue"}, CONFIG_FILTERS)

    assert caught.value.params == {"colour": "unknown parameter"}


def test_parse_list_query_filter_of_another_list_is_unknown() -> None:
    with pytest.raises(InvalidParameterError):
        parse_list_query({"target": str(uuid.uuid4())}, CONFIG_FILTERS)


@pytest.mark.parametrize("operator", ["gt", "gte", "lt", "lte"])
def test_parse_list_query_date_created_operator_sets_bound(operator: str) -> None:
    query = parse_list_query({f"date_created__{operator}": "2026-11-27T18:22:49.5Z"}, CONFIG_FILTERS)

    assert query.date_bounds == {operator: dt.datetime(2026, 11, 27, 18, 22, 49, 500000, tzinfo=dt.UTC)}


@pytest.mark.parametrize("operator", ["gt", "gte", "lt", "lte"])
def test_parse_list_query_bracket_alias_sets_same_bound(operator: str) -> None:
    query = parse_list_query({f"date_created[{operator}]": "2026-11-27T18:22:49Z"}, CONFIG_FILTERS)

    assert query.date_bounds == {operator: dt.datetime(2026, 11, 27, 18, 22, 49, tzinfo=dt.UTC)}


def test_parse_list_query_operator_and_its_alias_both_given_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="given twice"):
        parse_list_query(
            {"date_created__gte": "2026-11-27", "date_created[gte]": "2026-11-28"},
            CONFIG_FILTERS,
        )


def test_parse_list_query_date_only_is_midnight_utc() -> None:
    query = parse_list_query({"date_created__gte": "2026-11-27"}, CONFIG_FILTERS)

    assert query.date_bounds["gte"] == dt.datetime(2026, 11, 27, 0, 0, tzinfo=dt.UTC)


def test_parse_list_query_datetime_with_offset_is_converted_to_utc() -> None:
    query = parse_list_query({"date_created__lt": "2026-11-27T20:00:00+02:00"}, CONFIG_FILTERS)

    assert query.date_bounds["lt"] == dt.datetime(2026, 11, 27, 18, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("value", ["yesterday", "2026-02-30", "", "9999-12-31T23:59:59-01:00"])
def test_parse_list_query_bad_date_is_refused_naming_parameter(value: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_list_query({"date_created__gte": value}, CONFIG_FILTERS)

    assert caught.value.params == {"date_created__gte": "must be an ISO 8601 datetime or date"}


@pytest.mark.parametrize("name", ["date_created__eq", "date_created[ne]", "date_created", "date_created__"])
def test_parse_list_query_unknown_date_operator_is_unknown_parameter(name: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_list_query({name: "2026-11-27"}, CONFIG_FILTERS)

    assert caught.value.params == {name: "unknown parameter"}


def test_parse_list_query_enum_filter_allowed_value_is_kept() -> None:
    assert parse_list_query({"state": "deactivated"}, CONFIG_FILTERS).filters == {"state": "deactivated"}


@pytest.mark.parametrize("value", ["active", "NEW", "", "new,valid"])
def test_parse_list_query_enum_filter_bad_value_is_refused_listing_choices(value: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_list_query({"state": value}, CONFIG_FILTERS)

    assert caught.value.params == {"state": "must be one of new, valid, invalid, deactivated"}


def test_parse_list_query_id_filter_not_uuid_is_refused() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_list_query({"target": "config-1"}, TASK_FILTERS)

    assert caught.value.params == {"target": "must be an id"}


def test_parse_list_query_id_filter_uuid_is_kept() -> None:
    target = str(uuid.uuid4())

    assert parse_list_query({"target": target}, TASK_FILTERS).filters == {"target": target}


def test_parse_list_query_name_filter_lowercase_name_is_kept() -> None:
    assert parse_list_query({"type": "webhook_config"}, {"type": ANY_NAME}).filters == {"type": "webhook_config"}


@pytest.mark.parametrize("value", ["Webhook", "1type", "a b", "", "session.completed", "a" * 65])
def test_parse_list_query_name_filter_other_text_is_refused(value: str) -> None:
    """What publish refuses as a type or action (events.publish), the filter refuses too: no
    stored event could match it."""
    with pytest.raises(InvalidParameterError) as caught:
        parse_list_query({"type": value}, {"type": ANY_NAME})

    assert caught.value.params == {"type": "must be a lowercase name"}


@pytest.mark.parametrize("value", ["session", "webhook_config", "a" * 64, "session.completed", "Session", "a" * 65])
def test_the_events_filter_and_publish_agree_on_names(value: str) -> None:
    accepted_by_filter = True
    try:
        parse_list_query({"type": value}, {"type": ANY_NAME})
    except InvalidParameterError:
        accepted_by_filter = False
    assert accepted_by_filter == is_event_name(value)
    assert is_event_name(value) == (value in ("session", "webhook_config", "a" * 64))
