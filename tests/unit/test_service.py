"""Use cases on the template's table (moto in-process), a recording queue and a stepping clock."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.support import Backing, FakeClock, FakeQueue, FakeServices, count_partition, tasks_of
from webhook_service import admin, httperrors
from webhook_service.auth import Authenticator
from webhook_service.domain.configs import Task, TaskState, WebhookConfig
from webhook_service.domain.tenants import KeyState, Principal
from webhook_service.errors import (
    InvalidParameterError,
    InvalidStateError,
    NotFoundError,
    UnavailableError,
)
from webhook_service.service import configs as config_cases
from webhook_service.service import context as service_context
from webhook_service.service import tasks as task_cases
from webhook_service.service.context import Services
from webhook_service.storage.configs import Configs
from webhook_service.storage.store import Store
from webhook_service.timefmt import format_datetime
from webhook_service.validation import parse_json_body

URL = "https://receiver.example/hooks"
NEW_URL = "https://new-receiver.example/hooks"


def create(services: FakeServices, caller: Principal, url: str = URL) -> dict[str, Any]:
    return config_cases.create_config(services, caller, {"url": url})


def end_tests(services: FakeServices, caller: Principal, config_id: str) -> None:
    """End the config's open tests (as their jobs would), so that it can be tested again."""
    for listed in tasks_of(services, caller, config_id):
        task = services.store.configs.get_task(caller.organisation, listed["id"])
        assert task is not None
        if not task.ended:
            assert services.store.configs.end_task(
                replace(task, state=TaskState.SUCCEEDED, date_completed=services.clock())
            )


def stranger(services: FakeServices) -> Principal:
    """A caller of another organisation."""
    organisation = admin.create_organisation(services.store.organisations, "Stranger")["id"]
    return Principal(key_id=str(uuid.uuid4()), organisation=organisation, state=KeyState.ACTIVE)


# -- create ------------------------------------------------------------------------------------


def test_create_config_valid_url_returns_new_config_with_secret(services: FakeServices, caller: Principal) -> None:
    config = create(services, caller)

    assert (config["resource"], config["state"], config["url"], config["organisation"]) == (
        "webhook_config",
        "new",
        URL,
        caller.organisation,
    )
    assert config["secret"].startswith("whsec_")


def test_create_config_valid_url_stores_a_pending_test_task(services: FakeServices, caller: Principal) -> None:
    config = create(services, caller)

    (task,) = tasks_of(services, caller, config["id"])
    assert (task["type"], task["state"], task["key"], task["error"]) == (
        "webhook_config.test",
        "pending",
        caller.key_id,
        None,
    )


def test_create_config_valid_url_queues_one_job_for_its_task(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config = create(services, caller)

    (task,) = tasks_of(services, caller, config["id"])
    assert queue.jobs == [
        {"job": "test", "task": task["id"], "organisation": caller.organisation, "config": config["id"]}
    ]


def test_create_config_injected_clock_dates_the_config(
    services: FakeServices, caller: Principal, clock: FakeClock
) -> None:
    config = create(services, caller)

    assert config["date_created"] == format_datetime(clock.now)


def test_create_config_queue_unavailable_raises_503_naming_config_and_task(
    store: Store, caller: Principal, clock: FakeClock
) -> None:
    services = FakeServices(store, FakeQueue(fail=True), Authenticator(store.organisations), clock=clock)

    with pytest.raises(UnavailableError) as caught:
        create(services, caller)

    assert httperrors.status(caught.value) == 503
    assert set(caught.value.params or {}) == {"webhook_config", "task"}


def test_create_config_queue_unavailable_fails_task_and_keeps_config_new(
    store: Store, caller: Principal, clock: FakeClock
) -> None:
    services = FakeServices(store, FakeQueue(fail=True), Authenticator(store.organisations), clock=clock)
    with pytest.raises(UnavailableError) as caught:
        create(services, caller)
    params = caught.value.params or {}

    task = task_cases.get_task(services, caller, params["task"])
    config = config_cases.get_config(services, caller, params["webhook_config"])

    assert (task["state"], task["error"]) == ("failed", "queue-unavailable")
    assert task["date_completed"] is not None
    assert config["state"] == "new"


def test_create_config_after_queue_recovers_config_can_be_tested_again(
    store: Store, caller: Principal, clock: FakeClock
) -> None:
    queue = FakeQueue(fail=True)
    services = FakeServices(store, queue, Authenticator(store.organisations), clock=clock)
    with pytest.raises(UnavailableError) as caught:
        create(services, caller)
    queue.fail = False

    task = config_cases.queue_config_test(services, caller, (caught.value.params or {})["webhook_config"], {})

    assert task["state"] == "pending"
    assert [job["task"] for job in queue.jobs] == [task["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": "http://receiver.example/hooks"},
        {"url": "https://user:pw@receiver.example/"},
        {"url": URL, "secret": "whsec_mine"},
        {"url": URL, "state": "valid"},
        {"url": None},
    ],
)
def test_create_config_bad_body_writes_nothing_and_queues_nothing(
    services: FakeServices, caller: Principal, queue: FakeQueue, backing: Backing, body: dict[str, Any]
) -> None:
    before = count_partition(backing, caller.organisation)

    with pytest.raises(InvalidParameterError):
        config_cases.create_config(services, caller, body)

    assert count_partition(backing, caller.organisation) == before
    assert queue.jobs == []


def test_create_config_http_url_with_private_targets_allowed_is_accepted(
    store: Store, caller: Principal, queue: FakeQueue
) -> None:
    services = FakeServices(store, queue, Authenticator(store.organisations), allow_private_targets=True)

    assert create(services, caller, "http://127.0.0.1:9000/hooks")["state"] == "new"


# -- get and list --------------------------------------------------------------------------------


def test_get_config_own_config_returns_it_with_secret(services: FakeServices, caller: Principal) -> None:
    created = create(services, caller)

    assert config_cases.get_config(services, caller, created["id"]) == created


@pytest.mark.parametrize("config_id", [str(uuid.uuid4()), "not-a-uuid", "", "../../ORG"])
def test_get_config_unknown_or_malformed_id_raises_not_found(
    services: FakeServices, caller: Principal, config_id: str
) -> None:
    with pytest.raises(NotFoundError):
        config_cases.get_config(services, caller, config_id)


def test_get_config_other_organisations_config_raises_not_found(services: FakeServices, caller: Principal) -> None:
    theirs = create(services, stranger(services))

    with pytest.raises(NotFoundError):
        config_cases.get_config(services, caller, theirs["id"])


def test_list_configs_own_configs_returns_list_resource_newest_first(services: FakeServices, caller: Principal) -> None:
    first, second = create(services, caller), create(services, caller)

    listed = config_cases.list_configs(services, caller, {})

    assert listed == {
        "resource": "list",
        "data": [second, first],
        "has_more": False,
        "total_count": 2,
        "url": "/configs/webhook",
    }


def test_list_configs_unknown_cursor_raises_invalid_parameter_naming_it(
    services: FakeServices, caller: Principal
) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        config_cases.list_configs(services, caller, {"after_id": str(uuid.uuid4())})

    assert set(caught.value.params or {}) == {"after_id"}


def test_list_configs_task_filter_is_unknown_parameter(services: FakeServices, caller: Principal) -> None:
    with pytest.raises(InvalidParameterError):
        config_cases.list_configs(services, caller, {"target": str(uuid.uuid4())})


def test_get_task_other_organisations_task_raises_not_found(services: FakeServices, caller: Principal) -> None:
    other = stranger(services)
    theirs = create(services, other)
    (task,) = tasks_of(services, other, theirs["id"])

    with pytest.raises(NotFoundError):
        task_cases.get_task(services, caller, task["id"])


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "nope"])
def test_get_task_unknown_or_malformed_id_raises_not_found(
    services: FakeServices, caller: Principal, task_id: str
) -> None:
    with pytest.raises(NotFoundError):
        task_cases.get_task(services, caller, task_id)


def test_list_tasks_unknown_state_raises_invalid_parameter(services: FakeServices, caller: Principal) -> None:
    with pytest.raises(InvalidParameterError):
        task_cases.list_tasks(services, caller, {"state": "done"})


# -- test --------------------------------------------------------------------------------------


def test_queue_config_test_active_config_returns_pending_task_and_queues_it(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config = create(services, caller)

    task = config_cases.queue_config_test(services, caller, config["id"], {})

    assert (task["resource"], task["target"], task["state"]) == ("task", config["id"], "pending")
    assert queue.jobs[-1] == {
        "job": "test",
        "task": task["id"],
        "organisation": caller.organisation,
        "config": config["id"],
    }


def test_queue_config_test_null_body_is_accepted(services: FakeServices, caller: Principal) -> None:
    config = create(services, caller)

    assert (
        config_cases.queue_config_test(services, caller, config["id"], parse_json_body(b"null"))["state"] == "pending"
    )


def test_queue_config_test_deactivated_config_raises_invalid_state_and_queues_nothing(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config = create(services, caller)
    config_cases.delete_config(services, caller, config["id"])
    jobs_before = len(queue.jobs)

    with pytest.raises(InvalidStateError):
        config_cases.queue_config_test(services, caller, config["id"], {})

    assert len(queue.jobs) == jobs_before
    assert len(tasks_of(services, caller, config["id"])) == 1


def test_queue_config_test_body_with_fields_raises_invalid_parameter(services: FakeServices, caller: Principal) -> None:
    config = create(services, caller)

    with pytest.raises(InvalidParameterError):
        config_cases.queue_config_test(services, caller, config["id"], {"url": URL})


def test_queue_config_test_other_organisations_config_raises_not_found(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    theirs = create(services, stranger(services))

    with pytest.raises(NotFoundError):
        config_cases.queue_config_test(services, caller, theirs["id"], {})

    assert len(queue.jobs) == 1


def test_queue_config_test_queue_unavailable_raises_503_and_fails_task(
    store: Store, caller: Principal, clock: FakeClock
) -> None:
    queue = FakeQueue()
    services = FakeServices(store, queue, Authenticator(store.organisations), clock=clock)
    config = create(services, caller)
    end_tests(services, caller, config["id"])
    queue.fail = True

    with pytest.raises(UnavailableError) as caught:
        config_cases.queue_config_test(services, caller, config["id"], {})

    task = task_cases.get_task(services, caller, (caught.value.params or {})["task"])
    assert (task["state"], task["error"]) == ("failed", "queue-unavailable")


# -- update and delete -----------------------------------------------------------------------------


def test_update_config_url_stores_url_bumps_version_and_state_new(
    services: FakeServices, caller: Principal, store: Store
) -> None:
    config = create(services, caller)

    updated = config_cases.update_config(services, caller, config["id"], {"url": NEW_URL})

    assert (updated["url"], updated["state"]) == (NEW_URL, "new")
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    assert stored.version == 2


def test_update_config_url_queues_a_test_for_the_new_version(
    services: FakeServices, caller: Principal, queue: FakeQueue, store: Store
) -> None:
    config = create(services, caller)

    config_cases.update_config(services, caller, config["id"], {"url": NEW_URL})

    latest = store.configs.get_task(caller.organisation, queue.jobs[-1]["task"])
    assert len(queue.jobs) == 2
    assert latest is not None
    assert (latest.target, latest.target_version) == (config["id"], 2)


def test_update_config_url_keeps_secret(services: FakeServices, caller: Principal) -> None:
    config = create(services, caller)

    assert config_cases.update_config(services, caller, config["id"], {"url": NEW_URL})["secret"] == config["secret"]


def test_update_config_empty_body_returns_config_unchanged_without_test(
    services: FakeServices, caller: Principal, queue: FakeQueue, store: Store
) -> None:
    config = create(services, caller)

    assert config_cases.update_config(services, caller, config["id"], {}) == config
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    assert stored.version == 1
    assert len(queue.jobs) == 1


def test_update_config_url_on_deactivated_stores_url_without_test(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config = create(services, caller)
    config_cases.delete_config(services, caller, config["id"])

    updated = config_cases.update_config(services, caller, config["id"], {"url": NEW_URL})

    assert (updated["state"], updated["url"]) == ("deactivated", NEW_URL)
    assert len(queue.jobs) == 1


def test_update_config_state_new_on_deactivated_reactivates_and_queues_test(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config = create(services, caller)
    config_cases.delete_config(services, caller, config["id"])

    updated = config_cases.update_config(services, caller, config["id"], {"state": "new"})

    assert updated["state"] == "new"
    assert len(queue.jobs) == 2


@pytest.mark.parametrize("state", ["valid", "invalid", "active", None, ""])
def test_update_config_state_other_than_new_or_deactivated_raises_invalid_parameter(
    services: FakeServices, caller: Principal, backing: Backing, state: str | None
) -> None:
    config = create(services, caller)
    before = count_partition(backing, caller.organisation)

    with pytest.raises(InvalidParameterError) as caught:
        config_cases.update_config(services, caller, config["id"], {"state": state})

    assert set(caught.value.params or {}) == {"state"}
    assert count_partition(backing, caller.organisation) == before


@pytest.mark.parametrize(
    "body", [{"url": "ftp://receiver.example/"}, {"secret": "whsec_x"}, {"url": NEW_URL, "state": "valid"}]
)
def test_update_config_bad_body_leaves_config_unchanged(
    services: FakeServices, caller: Principal, store: Store, backing: Backing, body: dict[str, Any]
) -> None:
    config = create(services, caller)
    before = count_partition(backing, caller.organisation)

    with pytest.raises(InvalidParameterError):
        config_cases.update_config(services, caller, config["id"], body)

    assert config_cases.get_config(services, caller, config["id"]) == config
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    assert stored.version == 1
    assert count_partition(backing, caller.organisation) == before


def test_update_config_unknown_id_raises_not_found(services: FakeServices, caller: Principal) -> None:
    with pytest.raises(NotFoundError):
        config_cases.update_config(services, caller, str(uuid.uuid4()), {"url": NEW_URL})


def test_update_config_other_organisations_config_raises_not_found_and_keeps_it(
    services: FakeServices, caller: Principal
) -> None:
    other = stranger(services)
    theirs = create(services, other)

    with pytest.raises(NotFoundError):
        config_cases.update_config(services, caller, theirs["id"], {"url": NEW_URL})

    assert config_cases.get_config(services, other, theirs["id"])["url"] == URL


def test_delete_config_active_config_deactivates_without_test(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config = create(services, caller)

    deleted = config_cases.delete_config(services, caller, config["id"])

    assert deleted["state"] == "deactivated"
    assert config_cases.get_config(services, caller, config["id"])["state"] == "deactivated"
    assert len(queue.jobs) == 1


def test_delete_config_deactivated_config_stays_deactivated(services: FakeServices, caller: Principal) -> None:
    config = create(services, caller)
    config_cases.delete_config(services, caller, config["id"])

    assert config_cases.delete_config(services, caller, config["id"])["state"] == "deactivated"


def test_delete_config_other_organisations_config_raises_not_found(services: FakeServices, caller: Principal) -> None:
    other = stranger(services)
    theirs = create(services, other)

    with pytest.raises(NotFoundError):
        config_cases.delete_config(services, caller, theirs["id"])

    assert config_cases.get_config(services, other, theirs["id"])["state"] == "new"


@pytest.mark.parametrize("config_id", [str(uuid.uuid4()), "CONFIG#x"])
def test_delete_config_unknown_or_malformed_id_raises_not_found(
    services: FakeServices, caller: Principal, config_id: str
) -> None:
    with pytest.raises(NotFoundError):
        config_cases.delete_config(services, caller, config_id)


# -- races -------------------------------------------------------------------------------------


class RacingConfigs(Configs):
    """Configs where another writer changes the config just before each of our writes."""

    def __init__(self, inner: Store, races: int) -> None:
        super().__init__(inner.table, inner.organisations)
        self.races = races

    def replace(
        self, config: WebhookConfig, expected_version: int, task: Task | None, open_tests_below: int | None = None
    ) -> None:
        if self.races > 0:
            self.races -= 1
            current = self.get(config.organisation, config.id)
            assert current is not None
            super().replace(replace(current, version=current.version + 1), current.version, None)
        super().replace(config, expected_version, task, open_tests_below)


class RacingStore(Store):
    """A store whose configs race (RacingConfigs)."""

    def __init__(self, inner: Store, races: int) -> None:
        super().__init__(inner.table.name, inner.table.client)
        self.configs = RacingConfigs(inner, races)


def test_update_config_concurrent_change_is_read_again_and_applied(
    services: FakeServices, caller: Principal, store: Store, queue: FakeQueue
) -> None:
    config = create(services, caller)
    racing = Services(RacingStore(store, races=1), queue, services.authenticator, clock=services.clock)

    updated = config_cases.update_config(racing, caller, config["id"], {"url": NEW_URL})

    assert updated["url"] == NEW_URL
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    assert stored.version == 3


def test_update_config_endless_concurrent_changes_raise_unavailable(
    services: FakeServices, caller: Principal, store: Store, queue: FakeQueue
) -> None:
    config = create(services, caller)
    racing = Services(RacingStore(store, races=service_context.UPDATE_ATTEMPTS), queue, services.authenticator)

    with pytest.raises(UnavailableError):
        config_cases.update_config(racing, caller, config["id"], {"url": NEW_URL})

    assert len(queue.jobs) == 1
