"""The per-organisation rate limit (docs/design.md §18): GCRA on one item per organisation and
rate, exact across processes (each `Store` here stands for one function instance, with its own
memory of what it saw), 429 `limit-exceeded` with `Retry-After` past it, and the RateLimit
header fields on every authenticated answer. Storage is moto in-process (serialised where
threads share it); time is given, never waited for."""

from __future__ import annotations

import datetime as dt
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devstack.aws import serial
from tests.unit.support import (
    BASE_TIME,
    Backing,
    FakeServices,
    RecordingClient,
    as_dynamodb,
    http_event,
    load_function,
    response_body,
)
from webhook_service import admin
from webhook_service.domain.limits import DEFAULT_RATES, RATE_API, Rate
from webhook_service.storage.store import Store

GET_KEY = load_function("get_key")
GET_CONFIG = load_function("get_webhook_config")
CREATE = load_function("create_webhook_config")
API = DEFAULT_RATES[RATE_API]
HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def at(seconds: float) -> dt.datetime:
    return BASE_TIME + dt.timedelta(seconds=seconds)


def instances(backing: Backing, n: int) -> list[Store]:
    """`n` stores on one table, as `n` function instances would have (each its own memory),
    sharing one client that moto answers one call at a time, as DynamoDB applies each write
    atomically."""
    client = serial(backing.dynamodb)
    return [Store(backing.table_name, client) for _ in range(n)]


# -- the algorithm on the table ----------------------------------------------------------------


def test_a_burst_of_100_at_once_is_admitted_and_the_next_is_refused_with_retry_after(
    store: Store, organisation: str
) -> None:
    answers = [store.limits.take(organisation, RATE_API, at(0)) for _ in range(API.burst + 1)]

    assert [a.allowed for a in answers] == [True] * API.burst + [False]
    assert [a.remaining for a in answers[:3]] == [99, 98, 97]
    assert answers[API.burst - 1].remaining == 0
    refused = answers[-1]
    assert (refused.remaining, refused.retry_after_seconds, refused.limit) == (0, 1, 100)
    assert refused.reset_seconds == 2  # 100 requests' worth at 50 a second


def test_the_sustained_rate_is_50_a_second_whichever_instance_answers(backing: Backing, organisation: str) -> None:
    stores = instances(backing, 4)
    admitted = 0
    for step in range(750):  # a request every 2 ms for 1.5 s, round robin over 4 instances
        admitted += stores[step % 4].limits.take(organisation, RATE_API, at(step * 0.002)).allowed

    # A full bucket at first (100), then one every 20 ms until the last request, at 1.498 s.
    assert admitted == API.burst + 1_498 * API.per_second // 1000


def test_concurrent_requests_on_many_instances_admit_exactly_the_burst(backing: Backing, organisation: str) -> None:
    stores = instances(backing, 4)
    start = threading.Barrier(8, timeout=30)

    def flood(n: int) -> int:
        start.wait()
        return sum(stores[n % 4].limits.take(organisation, RATE_API, at(0)).allowed for _ in range(40))

    with ThreadPoolExecutor(max_workers=8) as pool:
        admitted = sum(pool.map(flood, range(8)))

    assert admitted == API.burst


def test_an_instance_that_saw_the_limit_refuses_without_a_request(backing: Backing, organisation: str) -> None:
    recording = RecordingClient(backing.dynamodb)
    store = Store(backing.table_name, as_dynamodb(recording))
    for _ in range(API.burst + 1):
        store.limits.take(organisation, RATE_API, at(0))
    calls = len(recording.calls)

    refused = [store.limits.take(organisation, RATE_API, at(0.001)) for _ in range(500)]

    assert not any(a.allowed for a in refused)
    assert len(recording.calls) == calls  # a flood past the limit costs storage nothing more


def test_instances_that_see_others_take_the_slots_ask_less_and_the_rate_still_holds(
    backing: Backing, organisation: str
) -> None:
    recording = RecordingClient(serial(backing.dynamodb))
    stores = [Store(backing.table_name, as_dynamodb(recording)) for _ in range(20)]
    requests = 2000  # one every millisecond for 2 s, spread round robin over 20 instances
    admitted = sum(stores[n % 20].limits.take(organisation, RATE_API, at(n / 1000)).allowed for n in range(requests))

    expected = API.burst + 1_999 * API.per_second // 1000
    assert 0.9 * expected <= admitted <= expected
    # Each instance would otherwise ask at every slot it hears of (a write each, refused).
    assert len(recording.calls) < requests / 3, len(recording.calls)


def test_a_refusal_tells_when_one_more_request_is_admitted(store: Store, organisation: str) -> None:
    for _ in range(API.burst):
        store.limits.take(organisation, RATE_API, at(0))
    refused = store.limits.take(organisation, RATE_API, at(0.005))
    later = store.limits.take(organisation, RATE_API, at(0 + 0.020))

    assert not refused.allowed
    assert refused.retry_after_seconds == 1
    assert later.allowed
    assert later.remaining == 0


def test_an_organisation_at_its_limit_never_refuses_another(store: Store, organisation: str) -> None:
    other = str(admin.create_organisation(store.organisations, "Other")["id"])
    for _ in range(API.burst * 2):
        store.limits.take(organisation, RATE_API, at(0))

    assert store.limits.take(other, RATE_API, at(0)).allowed
    assert store.limits.take(other, RATE_API, at(0)).remaining == API.burst - 2


def test_the_operators_rate_for_one_organisation_holds_from_the_next_answer(
    backing: Backing, organisation: str
) -> None:
    operator, instance = instances(backing, 2)
    instance.limits.take(organisation, RATE_API, at(0))  # this instance knows the default

    operator.limits.set_rate(organisation, RATE_API, Rate(per_second=2, burst=3))
    answers = [instance.limits.take(organisation, RATE_API, at(1)) for _ in range(5)]

    # The first answer after the change carries it (its request was judged by the rate known
    # before); from then on the organisation's own rate holds.
    assert answers[0].limit == 3
    assert [a.allowed for a in answers[1:]] == [True, True, False, False]
    assert operator.limits.rate(organisation, RATE_API) == Rate(2, 3)
    operator.limits.set_rate(organisation, RATE_API, None)
    assert operator.limits.rate(organisation, RATE_API) == API


# -- the answers ---------------------------------------------------------------------------------


@pytest.fixture
def token(installed_services: FakeServices, organisation: str) -> str:
    return admin.create_key(installed_services.store.organisations, organisation)[1]


def get_key(token: str) -> dict[str, Any]:
    response: dict[str, Any] = GET_KEY.handler(http_event("GET", "/key", token=token), None)
    return response


def test_every_answer_carries_the_ratelimit_headers(token: str) -> None:
    ok = get_key(token)
    missing = GET_CONFIG.handler(
        http_event(
            "GET",
            "/configs/webhook/x",
            route="GET /configs/webhook/{id}",
            token=token,
            path_params={"id": "not-a-uuid"},
        ),
        None,
    )
    bad = CREATE.handler(http_event("POST", "/configs/webhook", token=token, body="{"), None)

    for response, status in ((ok, 200), (missing, 404), (bad, 400)):
        assert response["statusCode"] == status
        assert all(name in response["headers"] for name in HEADERS), response["headers"]
    assert ok["headers"]["RateLimit-Limit"] == "100"
    assert [int(r["headers"]["RateLimit-Remaining"]) for r in (ok, missing, bad)] == [99, 98, 97]
    assert "Retry-After" not in ok["headers"]


def test_past_the_limit_the_answer_is_429_limit_exceeded_with_retry_after(
    token: str, installed_services: FakeServices
) -> None:
    installed_services.clock = lambda: BASE_TIME  # every request at one instant
    answers = [get_key(token) for _ in range(API.burst + 1)]

    assert [a["statusCode"] for a in answers[:-1]] == [200] * API.burst
    refused = answers[-1]
    assert refused["statusCode"] == 429
    body = response_body(refused)
    assert body["error"] == "limit-exceeded"
    assert body["params"] == {"requests": "at most 50 a second, bursts of 100"}
    assert refused["headers"]["Retry-After"] == "1"
    assert refused["headers"]["RateLimit-Remaining"] == "0"
    assert refused["headers"]["RateLimit-Reset"] == "2"
    assert json.loads(refused["body"])["message"].startswith("Too many requests")


def test_an_unauthenticated_request_takes_nothing_and_carries_no_rate(token: str) -> None:
    refused = GET_KEY.handler(http_event("GET", "/key", token="rwk_unknown"), None)

    assert refused["statusCode"] == 401
    assert "RateLimit-Limit" not in refused["headers"]
    assert get_key(token)["headers"]["RateLimit-Remaining"] == "99"
