"""The quotas of fair use (docs/design.md §18): at most 1,000 configs not deactivated per
organisation (a condition of the write that creates or reactivates one), at most 10 tests
queued a second (create, update, test) and 10 resends a second, each past it 429
`limit-exceeded` with `params` naming it, each with an operator override. Storage is moto
in-process; time stands still unless a test moves it."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devstack.aws import serial
from tests.unit.support import BASE_TIME, Backing, FakeQueue, FakeSender, FakeServices, tasks_of
from webhook_service import admin, httperrors
from webhook_service.auth import Authenticator
from webhook_service.domain.configs import ConfigState
from webhook_service.domain.limits import MAX_CONFIGS, RATE_RESENDS, RATE_TESTS, Rate
from webhook_service.domain.tenants import Principal
from webhook_service.errors import LimitExceededError
from webhook_service.events import publish
from webhook_service.jobs.deliverer import Deliverer
from webhook_service.jobs.dispatch import handle_job
from webhook_service.service import configs as config_cases
from webhook_service.service import events as event_cases
from webhook_service.service import tenants as tenant_cases
from webhook_service.storage.keys import CONFIG_COUNTS_SK, org_pk
from webhook_service.storage.store import Store

URL = "https://receiver.example/hooks/"


class StillClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = BASE_TIME

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def still() -> StillClock:
    return StillClock()


@pytest.fixture
def svc(backing: Backing, queue: FakeQueue, still: StillClock) -> FakeServices:
    """Services on a client that threads may share, at a time that stands still."""
    store = Store(backing.table_name, serial(backing.dynamodb))
    return FakeServices(store=store, queue=queue, authenticator=Authenticator(store.organisations), clock=still)


def refused_by(call: Any) -> dict[str, Any]:
    with pytest.raises(LimitExceededError) as caught:
        call()
    assert (httperrors.status(caught.value), httperrors.code(caught.value)) == (429, "limit-exceeded")
    assert caught.value.retry_after_seconds >= 1
    return dict(caught.value.params or {})


def end_tests(svc: FakeServices, queue: FakeQueue) -> None:
    """Run every queued test (so the open-tests cap never gets in the way)."""
    deliverer = Deliverer(store=svc.store, sender=FakeSender(), queue=FakeQueue(), clock=svc.clock)
    while queue.jobs:
        handle_job(deliverer, __import__("json").dumps(queue.jobs.pop(0)))


def active_configs(svc: FakeServices, caller: Principal) -> int:
    page = config_cases.list_configs(svc, caller, {})
    return int(page["total_count"])


# -- tests queued: 10 a second -------------------------------------------------------------------


def test_the_eleventh_test_queued_in_a_second_is_refused_and_creates_nothing(
    svc: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    for n in range(10):
        config_cases.create_config(svc, caller, {"url": f"{URL}{n}"})

    params = refused_by(lambda: config_cases.create_config(svc, caller, {"url": URL + "eleventh"}))

    assert params == {"tests": "at most 10 a second, bursts of 10"}
    assert active_configs(svc, caller) == 10
    assert len(queue.jobs) == 10


def test_updates_and_the_test_action_count_as_tests_and_an_open_test_answered_does_not(
    svc: FakeServices, caller: Principal, queue: FakeQueue, still: StillClock
) -> None:
    config = config_cases.create_config(svc, caller, {"url": URL})
    (first,) = tasks_of(svc, caller, config["id"])
    again = config_cases.queue_config_test(svc, caller, config["id"], {})  # answers the open test
    end_tests(svc, queue)
    for n in range(4):
        config_cases.update_config(svc, caller, config["id"], {"url": f"{URL}{n}"})
    for _ in range(5):
        end_tests(svc, queue)
        config_cases.queue_config_test(svc, caller, config["id"], {})
    end_tests(svc, queue)

    assert again["id"] == first["id"]
    assert "tests" in refused_by(lambda: config_cases.queue_config_test(svc, caller, config["id"], {}))
    assert "tests" in refused_by(lambda: config_cases.update_config(svc, caller, config["id"], {"state": "new"}))
    assert config_cases.get_config(svc, caller, config["id"])["url"] == f"{URL}3"
    still.advance(0.1)  # one more test's worth
    assert config_cases.queue_config_test(svc, caller, config["id"], {})["state"] == "pending"


def test_a_deactivation_queues_no_test_and_takes_none(svc: FakeServices, caller: Principal) -> None:
    configs = [config_cases.create_config(svc, caller, {"url": f"{URL}{n}"}) for n in range(10)]

    for config in configs:
        assert config_cases.delete_config(svc, caller, config["id"])["state"] == "deactivated"


def test_the_operator_can_raise_an_organisations_tests(svc: FakeServices, caller: Principal, still: StillClock) -> None:
    svc.store.limits.set_rate(caller.organisation, RATE_TESTS, Rate(per_second=100, burst=30))
    config_cases.create_config(svc, caller, {"url": URL})  # learns the organisation's own rate
    still.advance(1)  # the bucket is full again

    for n in range(30):
        config_cases.create_config(svc, caller, {"url": f"{URL}{n}"})

    assert active_configs(svc, caller) == 31
    assert "tests" in refused_by(lambda: config_cases.create_config(svc, caller, {"url": URL + "more"}))


# -- resends: 10 a second ------------------------------------------------------------------------


def ended_events(svc: FakeServices, caller: Principal, queue: FakeQueue, n: int) -> list[str]:
    """`n` events of the organisation, delivered, to a valid default config."""
    config = config_cases.create_config(svc, caller, {"url": URL})
    end_tests(svc, queue)
    assert config_cases.get_config(svc, caller, config["id"])["state"] == "valid"
    tenant_cases.update_organisation(svc, caller, {"webhook_config_default": config["id"]})
    events_queue = FakeQueue()
    deliverer = Deliverer(store=svc.store, sender=FakeSender(), queue=events_queue, clock=svc.clock)
    ids = []
    for _ in range(n):
        ids.append(publish(caller.organisation, "session", "completed", {}, store=svc.store, queue=events_queue).id)
    while events_queue.jobs:
        handle_job(deliverer, __import__("json").dumps(events_queue.jobs.pop(0)))
    return ids


def test_the_eleventh_resend_in_a_second_is_refused_and_reopens_nothing(
    svc: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    events = ended_events(svc, caller, queue, 11)

    for event_id in events[:10]:
        assert event_cases.resend_event(svc, caller, event_id, {})["state"] == "pending"
    params = refused_by(lambda: event_cases.resend_event(svc, caller, events[10], {}))

    assert params == {"resends": "at most 10 a second, bursts of 10"}
    assert event_cases.get_event(svc, caller, events[10])["state"] == "delivered"


def test_the_operator_can_raise_an_organisations_resends(
    svc: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    events = ended_events(svc, caller, queue, 13)
    svc.store.limits.set_rate(caller.organisation, RATE_RESENDS, Rate(per_second=20, burst=20))

    answers = [event_cases.resend_event(svc, caller, event_id, {})["state"] for event_id in events]

    assert answers == ["pending"] * 13


# -- configs: 1,000 not deactivated ---------------------------------------------------------------


def cap_configs(svc: FakeServices, caller: Principal, cap: int) -> None:
    svc.store.configs.set_quota(caller.organisation, cap)


def test_past_the_organisations_configs_a_create_is_refused_and_writes_nothing(
    svc: FakeServices, caller: Principal, queue: FakeQueue, still: StillClock
) -> None:
    cap_configs(svc, caller, 3)
    for n in range(3):
        config_cases.create_config(svc, caller, {"url": f"{URL}{n}"})

    params = refused_by(lambda: config_cases.create_config(svc, caller, {"url": URL + "fourth"}))

    assert params == {"configs": "at most 3 not deactivated per organisation"}
    assert active_configs(svc, caller) == 3
    assert len(queue.jobs) == 3
    assert svc.store.organisations.open_tests(caller.organisation) == 3


def test_a_deactivated_config_frees_its_place_and_reactivating_one_takes_it_again(
    svc: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    cap_configs(svc, caller, 2)
    first, second = (config_cases.create_config(svc, caller, {"url": f"{URL}{n}"}) for n in range(2))
    config_cases.delete_config(svc, caller, first["id"])
    third = config_cases.create_config(svc, caller, {"url": URL + "third"})

    params = refused_by(lambda: config_cases.update_config(svc, caller, first["id"], {"state": "new"}))

    assert "configs" in params
    assert config_cases.get_config(svc, caller, first["id"])["state"] == "deactivated"
    config_cases.delete_config(svc, caller, third["id"])
    assert config_cases.update_config(svc, caller, first["id"], {"state": "new"})["state"] == "new"
    assert {c["id"] for c in config_cases.list_configs(svc, caller, {})["data"]} == {first["id"], second["id"]}


def test_concurrent_creates_never_pass_the_organisations_configs(svc: FakeServices, caller: Principal) -> None:
    cap_configs(svc, caller, 4)
    svc.store.limits.set_rate(caller.organisation, RATE_TESTS, Rate(per_second=1000, burst=1000))
    svc.store.limits.take(caller.organisation, RATE_TESTS, svc.clock())

    def create(n: int) -> str:
        try:
            config_cases.create_config(svc, caller, {"url": f"{URL}{n}"})
        except LimitExceededError as exc:
            return next(iter(exc.params or {}))
        return "created"

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(create, range(16)))

    assert answers.count("created") == 4
    assert set(answers) == {"created", "configs"}
    assert active_configs(svc, caller) == 4


def test_the_default_is_a_thousand_configs_not_deactivated(svc: FakeServices, caller: Principal) -> None:
    counts = {"PK": org_pk(caller.organisation), "SK": CONFIG_COUNTS_SK}
    svc.store.table.update(
        counts,
        "SET #a = :n",
        ExpressionAttributeNames={"#a": "active"},
        ExpressionAttributeValues={":n": MAX_CONFIGS - 1},
    )

    config_cases.create_config(svc, caller, {"url": URL})
    params = refused_by(lambda: config_cases.create_config(svc, caller, {"url": URL + "more"}))

    assert MAX_CONFIGS == 1000
    assert params == {"configs": "at most 1000 not deactivated per organisation"}


def test_an_organisation_counted_before_the_quota_is_held_to_it_from_its_next_write(
    svc: FakeServices, caller: Principal
) -> None:
    made = [config_cases.create_config(svc, caller, {"url": f"{URL}{n}"}) for n in range(3)]
    config_cases.delete_config(svc, caller, made[0]["id"])
    counts = {"PK": org_pk(caller.organisation), "SK": CONFIG_COUNTS_SK}
    svc.store.table.update(counts, "REMOVE #a", ExpressionAttributeNames={"#a": "active"})  # as written before
    cap_configs(svc, caller, 3)

    config_cases.create_config(svc, caller, {"url": URL + "third"})
    params = refused_by(lambda: config_cases.create_config(svc, caller, {"url": URL + "fourth"}))

    assert "configs" in params
    assert active_configs(svc, caller) == 3
    stored = svc.store.table.get(counts)
    assert stored is not None
    assert stored["active"] == 3


def test_the_operators_quota_is_kept_and_cleared(svc: FakeServices, caller: Principal) -> None:
    cap_configs(svc, caller, 5)
    assert svc.store.configs.quota(caller.organisation) == 5
    svc.store.configs.set_quota(caller.organisation, None)
    assert svc.store.configs.quota(caller.organisation) == MAX_CONFIGS


def test_another_organisations_quotas_are_its_own(svc: FakeServices, caller: Principal, queue: FakeQueue) -> None:
    for n in range(10):
        config_cases.create_config(svc, caller, {"url": f"{URL}{n}"})
    other = Principal(
        key_id="k", organisation=admin.create_organisation(svc.store.organisations, "Other")["id"], state=caller.state
    )

    assert config_cases.create_config(svc, other, {"url": URL})["state"] == ConfigState.NEW


# -- the operator command line ----------------------------------------------------------------


def operator(args: list[str], store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    from webhook_service import cli

    monkeypatch.setattr(cli, "log_to_stderr", lambda: None)  # it would keep capsys's stream
    monkeypatch.setenv("TABLE_NAME", store.table.name)
    code = cli.main(args)
    out = capsys.readouterr()
    return code, (__import__("json").loads(out.out) if code == 0 else out.err)


def test_set_limits_gives_one_organisation_its_own_rates_and_quota(
    svc: FakeServices, caller: Principal, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    org = caller.organisation
    args = ["set-limits", "--organisation", org, "--rate", "5", "--burst", "7", "--resends-per-second", "2"]

    code, shown = operator([*args, "--max-configs", "3", "--tests-burst", "4"], svc.store, capsys, monkeypatch)

    assert code == 0
    assert shown == {
        "organisation": org,
        "requests": {"per_second": 5, "burst": 7},
        "tests": {"per_second": 10, "burst": 4},
        "resends": {"per_second": 2, "burst": 10},
        "configs": 3,
    }
    assert svc.store.limits.rate(org, "api") == Rate(5, 7)
    assert svc.store.configs.quota(org) == 3
    code, again = operator(["show-limits", "--organisation", org], svc.store, capsys, monkeypatch)
    assert (code, again) == (0, shown)


def test_set_limits_default_puts_everything_back(
    svc: FakeServices, caller: Principal, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    org = caller.organisation
    operator(["set-limits", "--organisation", org, "--rate", "1", "--max-configs", "2"], svc.store, capsys, monkeypatch)

    code, shown = operator(["set-limits", "--organisation", org, "--default"], svc.store, capsys, monkeypatch)

    assert code == 0
    assert shown["requests"] == {"per_second": 50, "burst": 100}
    assert shown["configs"] == MAX_CONFIGS


@pytest.mark.parametrize("bad", [["--rate", "0"], ["--burst", "100001"], ["--max-configs", "-1"], ["--rate", "x"]])
def test_set_limits_refuses_numbers_out_of_range(
    svc: FakeServices,
    caller: Principal,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    bad: list[str],
) -> None:
    with pytest.raises(SystemExit):
        operator(["set-limits", "--organisation", caller.organisation, *bad], svc.store, capsys, monkeypatch)
    assert svc.store.limits.rate(caller.organisation, "api") == Rate(50, 100)


def test_set_limits_of_an_unknown_organisation_says_so(
    svc: FakeServices, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, error = operator(
        ["set-limits", "--organisation", "00000000-0000-4000-8000-000000000000", "--rate", "5"],
        svc.store,
        capsys,
        monkeypatch,
    )

    assert code == 1
    assert "no organisation" in error
