"""The key and organisation mappers, and the state enums the mappers make from stored strings."""

from __future__ import annotations

import datetime as dt
import json

from webhook_service.domain.configs import ConfigState, TaskState, new_config, new_test_task
from webhook_service.domain.tenants import KeyState
from webhook_service.storage.codec import Item
from webhook_service.storage.items import (
    config_from_item,
    config_item,
    key_from_item,
    key_item,
    organisation_from_item,
    organisation_item,
    task_from_item,
    task_item,
)
from webhook_service.storage.keys import item_key, organisation_key
from webhook_service.views import key_resource, organisation_resource

CREATED = "2026-11-27T18:22:49.123456Z"
NOW = dt.datetime(2026, 11, 27, 18, 22, 49, 123456, tzinfo=dt.UTC)


def stored_key(**changes: object) -> Item:
    item: Item = {
        **item_key("org-1", "key", "key-1"),
        "resource": "key",
        "id": "key-1",
        "organisation": "org-1",
        "webhook_config": None,
        "state": "active",
        "token_hash": "hash-1",
        "date_created": CREATED,
    }
    item.update(changes)
    return item


def test_key_from_item_any_stored_key_maps_back_to_the_same_item() -> None:
    for item in (stored_key(), stored_key(state="deactivated", webhook_config="cfg-1")):
        assert key_item(key_from_item(item)) == item


def test_key_from_item_state_is_a_key_state_member() -> None:
    key = key_from_item(stored_key(state="deactivated"))

    assert key.state is KeyState.DEACTIVATED


def test_key_to_resource_shows_the_public_fields_in_order_and_never_the_hash() -> None:
    resource = key_resource(key_from_item(stored_key(webhook_config="cfg-1")))

    assert json.dumps(resource) == json.dumps(
        {
            "id": "key-1",
            "resource": "key",
            "organisation": "org-1",
            "webhook_config": "cfg-1",
            "state": "active",
            "date_created": CREATED,
        }
    )
    assert type(resource["state"]) is str


def test_organisation_from_item_reads_its_default_and_open_tests() -> None:
    item: Item = {
        **organisation_key("org-1"),
        "resource": "organisation",
        "id": "org-1",
        "name": "Acme",
        "webhook_config_default": "cfg-1",
        "date_created": CREATED,
        "open_tests": 3,
    }

    organisation = organisation_from_item(item)

    assert (organisation.webhook_config_default, organisation.open_tests) == ("cfg-1", 3)
    assert organisation_item(organisation) == {k: v for k, v in item.items() if k != "open_tests"}
    assert json.dumps(organisation_resource(organisation)) == json.dumps(
        {
            "id": "org-1",
            "resource": "organisation",
            "name": "Acme",
            "webhook_config_default": "cfg-1",
            "date_created": CREATED,
        }
    )


def test_organisation_from_item_without_open_tests_counts_none() -> None:
    item: Item = {"id": "org-1", "name": "Acme", "webhook_config_default": None, "date_created": CREATED}

    assert organisation_from_item(item).open_tests == 0


def test_config_and_task_items_keep_plain_state_strings_and_map_back_to_members() -> None:
    config = new_config("org-1", "https://receiver.example/hooks", NOW)
    task = new_test_task(config, "key-1", NOW)

    stored_config, stored_task = config_item(config), task_item(task)

    assert (type(stored_config["state"]), type(stored_task["state"])) == (str, str)
    assert config_from_item(stored_config).state is ConfigState.NEW
    assert task_from_item(stored_task).state is TaskState.PENDING
