"""List planning without a table: which index and partition a list reads, the sort-key
range its date bounds and cursors give, the Query it sends and the total a page reports.
Plain functions of plain values, so no moto here."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from webhook_service.storage.keys import (
    INDEX_BY_RELATED,
    INDEX_BY_STATE,
    INDEX_BY_TYPE,
    created_sk,
    related_pk,
    state_pk,
    type_pk,
)
from webhook_service.storage.planning import config_total, date_range, plan, query_kwargs, strictly_below
from webhook_service.timefmt import format_datetime

ORG = "org-1"
T0 = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=dt.UTC)


def sk(at: dt.datetime, resource_id: str | None = None) -> str:
    return created_sk(format_datetime(at), resource_id or str(uuid.uuid4()))


@pytest.mark.parametrize(
    ("resource", "filters", "index", "partition", "left"),
    [
        ("webhook_config", {}, INDEX_BY_TYPE, type_pk(ORG, "webhook_config"), {}),
        ("webhook_config", {"state": "valid"}, INDEX_BY_STATE, state_pk(ORG, "webhook_config", "valid"), {}),
        ("task", {"target": "c1"}, INDEX_BY_RELATED, related_pk(ORG, "task", "c1"), {}),
        # The related index wins; the state is filtered after reading it.
        (
            "task",
            {"target": "c1", "state": "failed"},
            INDEX_BY_RELATED,
            related_pk(ORG, "task", "c1"),
            {"state": "failed"},
        ),
        ("event", {"type": "session"}, INDEX_BY_RELATED, related_pk(ORG, "event", "session"), {}),
        (
            "event",
            {"state": "pending", "action": "x"},
            INDEX_BY_STATE,
            state_pk(ORG, "event", "pending"),
            {"action": "x"},
        ),
        # A plain list of events merges its state partitions (events have no ByType entries).
        (
            "event",
            {"action": "x"},
            INDEX_BY_STATE,
            [state_pk(ORG, "event", s) for s in ("pending", "delivered", "failed")],
            {"action": "x"},
        ),
        # `type=` narrows events only: on tasks it is a filter like any other.
        ("task", {"type": "session"}, INDEX_BY_TYPE, type_pk(ORG, "task"), {"type": "session"}),
    ],
)
def test_plan_picks_the_index_that_serves_the_filter(
    resource: str, filters: dict[str, str], index: str, partition: str | list[str], left: dict[str, str]
) -> None:
    assert plan(ORG, resource, filters) == (index, partition if isinstance(partition, list) else [partition], left)


def test_plan_leaves_the_callers_filters_untouched() -> None:
    filters = {"target": "c1", "state": "failed"}
    plan(ORG, "task", filters)
    assert filters == {"target": "c1", "state": "failed"}


def test_partitions_of_two_organisations_never_meet() -> None:
    assert plan("a", "event", {"type": "x"})[1] != plan("b", "event", {"type": "x"})[1]
    assert plan("a", "task", {})[1] != plan("a", "event", {})[1]


def test_date_range_without_bounds_is_open() -> None:
    assert date_range({}) == (None, None)


def test_date_range_keeps_exactly_the_items_the_bounds_allow() -> None:
    before, at, after = sk(T0 - dt.timedelta(microseconds=1)), sk(T0), sk(T0 + dt.timedelta(microseconds=1))
    items = [before, at, after]

    def kept(bounds: dict[str, dt.datetime]) -> list[str]:
        low, high = date_range(bounds)
        return [s for s in items if (low is None or s >= low) and (high is None or s <= high)]

    assert kept({"gte": T0}) == [at, after]
    assert kept({"gt": T0}) == [after]
    assert kept({"lte": T0}) == [before, at]
    assert kept({"lt": T0}) == [before]
    assert kept({"gt": T0, "lt": T0}) == []
    assert kept({"gte": T0, "lte": T0}) == [at]


def test_date_range_takes_the_tighter_of_two_lower_or_upper_bounds() -> None:
    later = T0 + dt.timedelta(hours=1)
    low, _ = date_range({"gte": later, "gt": T0})
    assert low == format_datetime(later)
    _, high = date_range({"lte": later, "lt": T0})
    assert high == format_datetime(T0)


def test_strictly_below_keeps_every_smaller_key_and_leaves_the_cursor_out() -> None:
    cursor = sk(T0, "5" * 8 + "-0000-4000-8000-" + "0" * 12)
    smaller_same_instant = sk(T0, "4" + "f" * 7 + "-ffff-4fff-bfff-" + "f" * 12)
    older = sk(T0 - dt.timedelta(microseconds=1), "f" * 8 + "-ffff-4fff-bfff-" + "f" * 12)
    bound = strictly_below(cursor)
    assert cursor > bound
    assert smaller_same_instant <= bound
    assert older <= bound


def test_strictly_below_a_key_ending_in_zero() -> None:
    cursor = sk(T0, "0" * 8 + "-0000-4000-8000-" + "0" * 12)
    neighbour = sk(T0, "0" * 8 + "-0000-4000-8000-" + "0" * 11 + "/")  # one character less, same length
    assert neighbour <= strictly_below(cursor) < cursor


def test_config_total_counts_the_state_asked_or_every_config_not_deactivated() -> None:
    counts = {"new": 2, "valid": 5, "invalid": 1, "deactivated": 7}
    assert config_total(counts, {}) == 8
    assert config_total(counts, {"state": "deactivated"}) == 7
    assert config_total(counts, {"state": "valid"}) == 5
    assert config_total({}, {"state": "valid"}) == 0


def test_query_kwargs_newest_first_with_the_range_and_filters() -> None:
    kwargs = query_kwargs("table", INDEX_BY_STATE, "p", "low", "high", {"b": "2", "a": "1"})
    assert kwargs["TableName"] == "table"
    assert kwargs["IndexName"] == INDEX_BY_STATE
    assert kwargs["ScanIndexForward"] is False
    assert kwargs["KeyConditionExpression"] == "#pk = :pk AND #sk BETWEEN :low AND :high"
    assert kwargs["ExpressionAttributeNames"] == {"#pk": "StatePK", "#sk": "CreatedSK", "#f0": "a", "#f1": "b"}
    assert kwargs["FilterExpression"] == "#f0 = :f0 AND #f1 = :f1"
    assert kwargs["ExpressionAttributeValues"] == {
        ":pk": {"S": "p"},
        ":low": {"S": "low"},
        ":high": {"S": "high"},
        ":f0": {"S": "1"},
        ":f1": {"S": "2"},
    }


@pytest.mark.parametrize(
    ("low", "high", "condition"),
    [
        (None, None, "#pk = :pk"),
        ("l", None, "#pk = :pk AND #sk >= :low"),
        (None, "h", "#pk = :pk AND #sk <= :high"),
    ],
)
def test_query_kwargs_one_sided_ranges(low: str | None, high: str | None, condition: str) -> None:
    kwargs = query_kwargs("t", INDEX_BY_TYPE, "p", low, high, {})
    assert kwargs["KeyConditionExpression"] == condition
    assert "FilterExpression" not in kwargs
    assert ("#sk" in kwargs["ExpressionAttributeNames"]) == (low is not None or high is not None)
