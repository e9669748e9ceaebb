"""The unmodified official `ricloud` 3.2.0 client against the local stack (docs/design.md: the compatibility target)."""

from __future__ import annotations

import pytest

from tests.support.stack import Client, LocalStack

pytestmark = pytest.mark.integration


def test_ricloud_client_manages_a_config_end_to_end(stack: LocalStack, fresh: Client) -> None:
    seen = stack.official_client(fresh.token, "ricloud_session.py", "https://receiver.example/webhooks/")

    created = seen["created"]
    assert created["state"] == "new"
    assert created["url"] == "https://receiver.example/webhooks/moved"
    assert seen["retrieved"]["id"] == created["id"]
    assert seen["listed_ids"] == [created["id"]]
    assert seen["task"]["type"] == "webhook_config.test"
    assert seen["task"]["target"] == created["id"]
    assert seen["tasks_total"] == 3  # create, url update, explicit test
    assert seen["deleted_state"] == "deactivated"
    assert seen["deactivated_ids"] == [created["id"]]
    assert seen["missing_status"] == [404, "not-found"]
