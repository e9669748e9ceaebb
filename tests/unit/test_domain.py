"""Domain rules: the state machine of docs/design.md §6.1, versions, secrets and ids."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import replace

import pytest

from webhook_service.domain.configs import (
    TASK_TYPE_TEST,
    ConfigState,
    WebhookConfig,
    can_test,
    failed_to_queue,
    generate_secret,
    new_config,
    new_test_task,
    plan_update,
)
from webhook_service.domain.ids import is_uuid
from webhook_service.views import config_resource, task_resource

NOW = dt.datetime(2026, 11, 27, 18, 22, 49, 123456, tzinfo=dt.UTC)
OLD_URL = "https://old.example/hooks"
NEW_URL = "https://new.example/hooks"
ACTIVE_STATES = ("new", "valid", "invalid")
ALL_STATES = (*ACTIVE_STATES, "deactivated")


def config_in(state: str, version: int = 4) -> WebhookConfig:
    return replace(new_config(str(uuid.uuid4()), OLD_URL, NOW), state=ConfigState(state), version=version)


# -- create -------------------------------------------------------------------------------


def test_new_config_any_url_starts_new_at_version_one() -> None:
    config = new_config("org", NEW_URL, NOW)

    assert (config.state, config.version, config.url, config.date_created) == ("new", 1, NEW_URL, NOW)


def test_new_config_twice_gives_distinct_ids_and_secrets() -> None:
    first, second = new_config("org", NEW_URL, NOW), new_config("org", NEW_URL, NOW)

    assert first.id != second.id
    assert first.secret != second.secret


def test_new_test_task_for_config_records_its_version_and_target() -> None:
    config = config_in("valid", version=7)

    task = new_test_task(config, "key-1", NOW)

    assert (task.type, task.target, task.target_version, task.state) == (TASK_TYPE_TEST, config.id, 7, "pending")
    assert (task.organisation, task.key, task.error, task.result) == (config.organisation, "key-1", None, None)


def test_failed_to_queue_pending_task_ends_failed_with_queue_unavailable() -> None:
    task = new_test_task(config_in("new"), "key-1", NOW)
    later = NOW + dt.timedelta(seconds=1)

    failed = failed_to_queue(task, later)

    assert (failed.state, failed.error, failed.date_completed) == ("failed", "queue-unavailable", later)


# -- update: design.md §6.1 -------------------------------------------------------------------


@pytest.mark.parametrize("state", ACTIVE_STATES)
def test_plan_update_url_on_active_config_moves_to_new_and_queues_test(state: str) -> None:
    plan = plan_update(config_in(state), NEW_URL, None)

    assert (plan.config.state, plan.config.url, plan.queue_test, plan.changed) == ("new", NEW_URL, True, True)


@pytest.mark.parametrize("state", ACTIVE_STATES)
def test_plan_update_url_with_state_new_on_active_config_moves_to_new_and_queues_test(state: str) -> None:
    plan = plan_update(config_in(state), NEW_URL, "new")

    assert (plan.config.state, plan.config.url, plan.queue_test) == ("new", NEW_URL, True)


@pytest.mark.parametrize("state", ALL_STATES)
def test_plan_update_state_new_from_any_state_moves_to_new_and_queues_test(state: str) -> None:
    plan = plan_update(config_in(state), None, "new")

    assert (plan.config.state, plan.config.url, plan.queue_test) == ("new", OLD_URL, True)


def test_plan_update_state_new_with_url_on_deactivated_reactivates_with_url_and_queues_test() -> None:
    plan = plan_update(config_in("deactivated"), NEW_URL, "new")

    assert (plan.config.state, plan.config.url, plan.queue_test) == ("new", NEW_URL, True)


def test_plan_update_url_only_on_deactivated_stores_url_and_stays_deactivated_without_test() -> None:
    plan = plan_update(config_in("deactivated"), NEW_URL, None)

    assert (plan.config.state, plan.config.url, plan.queue_test, plan.changed) == (
        "deactivated",
        NEW_URL,
        False,
        True,
    )


@pytest.mark.parametrize("state", ALL_STATES)
def test_plan_update_state_deactivated_from_any_state_deactivates_without_test(state: str) -> None:
    plan = plan_update(config_in(state), None, "deactivated")

    assert (plan.config.state, plan.config.url, plan.queue_test) == ("deactivated", OLD_URL, False)


def test_plan_update_state_deactivated_with_url_deactivates_with_url_and_no_test() -> None:
    plan = plan_update(config_in("valid"), NEW_URL, "deactivated")

    assert (plan.config.state, plan.config.url, plan.queue_test) == ("deactivated", NEW_URL, False)


@pytest.mark.parametrize("state", ALL_STATES)
def test_plan_update_nothing_given_leaves_config_unchanged_without_version_bump(state: str) -> None:
    config = config_in(state)

    plan = plan_update(config, None, None)

    assert (plan.config, plan.changed, plan.queue_test) == (config, False, False)


@pytest.mark.parametrize(
    ("state", "url", "new_state"),
    [
        ("valid", NEW_URL, None),
        ("invalid", None, "new"),
        ("deactivated", NEW_URL, None),
        ("new", None, "deactivated"),
        ("valid", OLD_URL, None),  # the same url is still a change: a queued test must not land on it
    ],
)
def test_plan_update_any_change_bumps_version_by_one(state: str, url: str | None, new_state: str | None) -> None:
    plan = plan_update(config_in(state, version=4), url, new_state)

    assert plan.config.version == 5


def test_plan_update_any_change_keeps_id_secret_and_date_created() -> None:
    config = config_in("valid")

    updated = plan_update(config, NEW_URL, "new").config

    assert (updated.id, updated.secret, updated.date_created, updated.organisation) == (
        config.id,
        config.secret,
        config.date_created,
        config.organisation,
    )


@pytest.mark.parametrize(
    ("state", "testable"), [("new", True), ("valid", True), ("invalid", True), ("deactivated", False)]
)
def test_can_test_config_in_state_allows_all_but_deactivated(state: str, testable: bool) -> None:
    assert can_test(config_in(state)) is testable


# -- resources ------------------------------------------------------------------------------


def test_config_to_resource_without_secret_omits_secret() -> None:
    resource = config_resource(config_in("valid"), with_secret=False)

    assert "secret" not in resource
    assert resource["resource"] == "webhook_config"


def test_config_to_resource_default_shows_secret_and_formats_date() -> None:
    config = config_in("new")

    resource = config_resource(config)

    assert resource["secret"] == config.secret
    assert resource["date_created"] == "2026-11-27T18:22:49.123456Z"


def test_task_to_resource_pending_task_has_null_end_fields_and_no_version() -> None:
    resource = task_resource(new_test_task(config_in("new"), "key-1", NOW))

    assert (resource["resource"], resource["date_started"], resource["date_completed"]) == ("task", None, None)
    assert "target_version" not in resource


# -- secrets and ids ------------------------------------------------------------------------


def test_generate_secret_any_call_is_whsec_and_base64_of_32_bytes() -> None:
    secret = generate_secret()

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_generate_secret_two_calls_differ() -> None:
    assert generate_secret() != generate_secret()


def test_is_uuid_canonical_lowercase_uuid_is_accepted() -> None:
    assert is_uuid(str(uuid.uuid4()))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-a-uuid",
        str(uuid.uuid4()).upper(),
        uuid.uuid4().hex,
        "{" + str(uuid.uuid4()) + "}",
        str(uuid.uuid4()) + " ",
        "../" + str(uuid.uuid4()),
        None,
        123,
    ],
)
def test_is_uuid_non_canonical_or_non_string_is_refused(value: object) -> None:
    assert not is_uuid(value)
