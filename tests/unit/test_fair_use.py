"""Fair use of tests: one open test per config version (a second request answers the open
task), and at most `open_tests_cap` open test tasks per organisation (then 429
`limit-exceeded`), strict under concurrent requests, with the count kept exact by every path
that ends a task. Storage is moto in-process (serialised where threads share it)."""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.aws import serial
from tests.unit.support import (
    Backing,
    FakeClock,
    FakeQueue,
    FakeSender,
    FakeServices,
    ThreeLaneServices,
    http_event,
    load_function,
    sqs_event,
    tasks_of,
)
from webhook_service import admin, httperrors
from webhook_service.auth import Authenticator
from webhook_service.consumer import handle_batch
from webhook_service.domain.configs import FAST_LANE_OPEN_TESTS, MAX_OPEN_TESTS
from webhook_service.domain.limits import RATE_TESTS, Rate
from webhook_service.domain.tenants import KeyState, Principal
from webhook_service.errors import LimitExceededError, UnavailableError
from webhook_service.jobs.deliverer import Deliverer
from webhook_service.jobs.dispatch import handle_job
from webhook_service.service import configs as config_cases
from webhook_service.storage.store import Store
from webhook_service.sweep import sweep
from webhook_service.wiring import use_services

URL = "https://receiver.example/hooks/"
CAP = 3


@pytest.fixture
def capped(backing: Backing, clock: FakeClock, queue: FakeQueue) -> FakeServices:
    """Services whose store allows CAP open tests per organisation, safe for threads."""
    store = Store(backing.table_name, serial(backing.dynamodb), open_tests_cap=CAP)
    return FakeServices(store=store, queue=queue, authenticator=Authenticator(store.organisations), clock=clock)


def raise_tests_rate(services: FakeServices, caller: Principal) -> None:
    """Lift the organisation's rate of tests queued (design.md §18) out of the way of a test
    of another limit, and let the store learn it."""
    services.store.limits.set_rate(caller.organisation, RATE_TESTS, Rate(per_second=1000, burst=1000))
    services.store.limits.take(caller.organisation, RATE_TESTS, services.clock())


def open_tests(services: FakeServices, caller: Principal) -> int:
    return services.store.organisations.open_tests(caller.organisation)


def run_jobs(services: FakeServices, queue: FakeQueue, sender: FakeSender | None = None) -> None:
    deliverer = Deliverer(store=services.store, sender=sender or FakeSender(), queue=FakeQueue(), clock=services.clock)
    while queue.jobs:
        handle_job(deliverer, json.dumps(queue.jobs.pop(0)))


# -- one open test per config version --------------------------------------------------------


def test_test_while_the_configs_test_is_pending_answers_that_task(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    (first,) = tasks_of(services, caller, config["id"])

    again = config_cases.queue_config_test(services, caller, config["id"], {})

    assert again == first
    assert len(tasks_of(services, caller, config["id"])) == 1
    assert len(queue.jobs) == 1


def test_test_while_the_configs_test_is_processing_answers_that_task(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    (first,) = tasks_of(services, caller, config["id"])
    task = services.store.configs.get_task(caller.organisation, first["id"])
    assert task is not None
    services.store.configs.start_task(task, "00000000-0000-4000-8000-000000000001", services.clock())

    again = config_cases.queue_config_test(services, caller, config["id"], {})

    assert (again["id"], again["state"]) == (first["id"], "processing")


def test_test_after_the_open_one_ended_queues_a_new_task(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    run_jobs(services, queue)

    task = config_cases.queue_config_test(services, caller, config["id"], {})

    assert task["state"] == "pending"
    assert len(tasks_of(services, caller, config["id"])) == 2
    assert [j["task"] for j in queue.jobs] == [task["id"]]


def test_test_after_an_update_answers_the_new_versions_task_not_the_old_one(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    config_cases.update_config(services, caller, config["id"], {"url": URL + "v2"})
    newest = tasks_of(services, caller, config["id"])[0]

    again = config_cases.queue_config_test(services, caller, config["id"], {})

    assert again["id"] == newest["id"]
    assert len(tasks_of(services, caller, config["id"])) == 2  # the first one waits to be superseded


def test_concurrent_tests_of_one_config_queue_one_task(
    capped: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config = config_cases.create_config(capped, caller, {"url": URL})
    run_jobs(capped, queue)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: config_cases.queue_config_test(capped, caller, config["id"], {}), range(8)))

    assert len({a["id"] for a in answers}) == 1
    assert len(queue.jobs) == 1
    assert open_tests(capped, caller) == 1


# -- at most CAP open tests per organisation ---------------------------------------------------


def test_create_past_the_organisations_open_tests_is_refused_and_writes_nothing(
    capped: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    for n in range(CAP):
        config_cases.create_config(capped, caller, {"url": f"{URL}{n}"})

    with pytest.raises(LimitExceededError) as caught:
        config_cases.create_config(capped, caller, {"url": URL + "one-too-many"})

    assert httperrors.status(caught.value) == 429
    assert httperrors.code(caught.value) == "limit-exceeded"
    assert config_cases.list_configs(capped, caller, {})["total_count"] == CAP
    assert open_tests(capped, caller) == CAP
    assert len(queue.jobs) == CAP


def test_update_and_test_past_the_organisations_open_tests_are_refused(
    capped: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    first = config_cases.create_config(capped, caller, {"url": URL})
    run_jobs(capped, queue)
    for n in range(CAP):
        config_cases.create_config(capped, caller, {"url": f"{URL}{n}"})

    with pytest.raises(LimitExceededError):
        config_cases.update_config(capped, caller, first["id"], {"url": URL + "v2"})
    with pytest.raises(LimitExceededError):
        config_cases.queue_config_test(capped, caller, first["id"], {})

    assert config_cases.get_config(capped, caller, first["id"])["url"] == URL  # the update was not applied
    assert len(tasks_of(capped, caller, first["id"])) == 1


def test_other_organisations_are_not_counted(capped: FakeServices, caller: Principal) -> None:
    for n in range(CAP):
        config_cases.create_config(capped, caller, {"url": f"{URL}{n}"})
    other = Principal(
        key_id="k",
        organisation=admin.create_organisation(capped.store.organisations, "Other")["id"],
        state=KeyState.ACTIVE,
    )

    config_cases.create_config(capped, other, {"url": URL})

    assert (open_tests(capped, caller), open_tests(capped, other)) == (CAP, 1)


def test_concurrent_creates_never_pass_the_cap(capped: FakeServices, caller: Principal) -> None:
    def create(n: int) -> str:
        try:
            config_cases.create_config(capped, caller, {"url": f"{URL}{n}"})
        except LimitExceededError:
            return "refused"
        return "created"

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(create, range(3 * CAP)))

    assert answers.count("created") == CAP
    assert open_tests(capped, caller) == CAP
    assert config_cases.list_configs(capped, caller, {})["total_count"] == CAP


def test_default_cap_is_a_hundred_open_tests() -> None:
    assert MAX_OPEN_TESTS == 100
    assert Store("table").organisations.open_tests_cap == MAX_OPEN_TESTS


def test_api_answers_429_limit_exceeded_in_the_error_format(
    capped: FakeServices, organisation: str, queue: FakeQueue
) -> None:
    _, token = admin.create_key(capped.store.organisations, organisation)
    use_services(capped)
    try:
        answers = [
            load_function("create_webhook_config").handler(
                http_event("POST", "/configs/webhook", token=token, body=json.dumps({"url": f"{URL}{n}"})), None
            )
            for n in range(CAP + 1)
        ]
    finally:
        use_services(None)

    assert [a["statusCode"] for a in answers] == [201] * CAP + [429]
    body = json.loads(answers[-1]["body"])
    assert body["error"] == "limit-exceeded"
    assert set(body) == {"error", "message", "params"}


# -- every path that ends a task keeps the count exact ---------------------------------------


def test_write_back_counts_the_task_out(capped: FakeServices, caller: Principal, queue: FakeQueue) -> None:
    config_cases.create_config(capped, caller, {"url": URL})
    config_cases.create_config(capped, caller, {"url": URL + "failing"})
    run_jobs(capped, queue, FakeSender(status=500))

    assert open_tests(capped, caller) == 0


def test_stale_write_back_counts_the_task_out(capped: FakeServices, caller: Principal, queue: FakeQueue) -> None:
    config = config_cases.create_config(capped, caller, {"url": URL})
    job = queue.jobs.pop(0)

    def change_meanwhile() -> None:
        config_cases.update_config(capped, caller, config["id"], {"state": "deactivated"})

    deliverer = Deliverer(
        store=capped.store, sender=FakeSender(before=change_meanwhile), queue=FakeQueue(), clock=capped.clock
    )
    outcome = handle_job(deliverer, json.dumps(job))

    assert outcome.name == "stale"
    assert open_tests(capped, caller) == 0


def test_superseded_test_counts_the_task_out(capped: FakeServices, caller: Principal, queue: FakeQueue) -> None:
    config = config_cases.create_config(capped, caller, {"url": URL})
    config_cases.update_config(capped, caller, config["id"], {"url": URL + "v2"})
    assert open_tests(capped, caller) == 2

    run_jobs(capped, queue)

    tasks = tasks_of(capped, caller, config["id"])
    assert sorted(t["error"] or "none" for t in tasks) == ["none", "superseded"]
    assert open_tests(capped, caller) == 0


def test_queue_unavailable_fallback_counts_the_task_out(capped: FakeServices, caller: Principal) -> None:
    capped.queue = FakeQueue(fail=True)

    with pytest.raises(UnavailableError):
        config_cases.create_config(capped, caller, {"url": URL})

    assert open_tests(capped, caller) == 0


def test_sweep_ending_a_lost_task_counts_it_out(
    capped: FakeServices, caller: Principal, queue: FakeQueue, clock: FakeClock
) -> None:
    config_cases.create_config(capped, caller, {"url": URL})
    queue.jobs.clear()  # the job is lost
    lost = FakeQueue(fail=True)
    for hours in (2, 4):  # queued again (refused), then ended
        sweep(capped.store, lost, clock.now + dt.timedelta(hours=hours), dt.timedelta(hours=1))

    assert open_tests(capped, caller) == 0


def test_duplicate_job_of_an_ended_test_does_not_count_it_out_twice(
    capped: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config_cases.create_config(capped, caller, {"url": URL})
    job = dict(queue.jobs[0])
    run_jobs(capped, queue)
    config_cases.create_config(capped, caller, {"url": URL + "second"})
    queue.jobs.clear()

    queue.jobs.append(job)
    run_jobs(capped, queue)

    assert open_tests(capped, caller) == 1


def test_batch_of_tests_that_all_end_leaves_no_open_test(
    capped: FakeServices, caller: Principal, queue: FakeQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(CAP):
        config_cases.create_config(capped, caller, {"url": f"{URL}{n}"})
    deliverer = Deliverer(store=capped.store, sender=FakeSender(), queue=FakeQueue(), clock=capped.clock)
    monkeypatch.setattr("webhook_service.wiring.deliverer", lambda: deliverer)

    handle_batch(sqs_event(*(json.dumps(j) for j in queue.jobs)), None)

    assert open_tests(capped, caller) == 0


# -- an organisation's share of the tests lane -----------------------------------------------


@pytest.fixture
def laned(backing: Backing, clock: FakeClock) -> ThreeLaneServices:
    """Services with a tests lane and a slow lane of their own, safe for threads."""
    store = Store(backing.table_name, serial(backing.dynamodb))
    return ThreeLaneServices(
        store=store,
        queue=FakeQueue(),
        authenticator=Authenticator(store.organisations),
        clock=clock,
        test_queue=FakeQueue(),
        slow_queue=FakeQueue(),
    )


def test_tests_beyond_the_organisations_first_five_open_ones_take_the_slow_lane(
    laned: ThreeLaneServices, caller: Principal
) -> None:
    for n in range(FAST_LANE_OPEN_TESTS + 2):
        config_cases.create_config(laned, caller, {"url": f"{URL}{n}"})

    assert len(laned.test_queue.jobs) == FAST_LANE_OPEN_TESTS
    assert len(laned.slow_queue.jobs) == 2


def test_tests_take_the_tests_lane_again_once_the_organisations_open_ones_end(
    laned: ThreeLaneServices, caller: Principal
) -> None:
    for n in range(FAST_LANE_OPEN_TESTS):
        config_cases.create_config(laned, caller, {"url": f"{URL}{n}"})
    run_jobs(laned, laned.test_queue)

    config_cases.create_config(laned, caller, {"url": URL + "later"})

    assert len(laned.test_queue.jobs) == 1
    assert laned.slow_queue.jobs == []


def test_concurrent_tests_never_give_one_organisation_more_than_five_in_the_tests_lane(
    laned: ThreeLaneServices, caller: Principal
) -> None:
    raise_tests_rate(laned, caller)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: config_cases.create_config(laned, caller, {"url": f"{URL}{n}"}), range(12)))

    assert len(laned.test_queue.jobs) == FAST_LANE_OPEN_TESTS
    assert len(laned.slow_queue.jobs) == 12 - FAST_LANE_OPEN_TESTS
    assert open_tests(laned, caller) == 12
