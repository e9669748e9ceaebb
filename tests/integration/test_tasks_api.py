"""The /tasks endpoints over real HTTP on the local stack."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Client

pytestmark = pytest.mark.integration


def test_retrieve_task_of_another_organisation_answers_404(dev: Client, other: Client) -> None:
    config = dev.create_config()
    task = dev.post(f"/configs/webhook/{config['id']}/test").json()

    response = other.get(f"/tasks/{task['id']}")

    assert response.status_code == 404
    assert response.json()["error"] == "not-found"


def test_list_tasks_filters_by_target_and_state(fresh: Client) -> None:
    first = fresh.create_config()
    second = fresh.create_config()
    fresh.post(f"/configs/webhook/{second['id']}/test")

    by_target = fresh.get("/tasks", params={"target": second["id"]}).json()
    pending = fresh.get("/tasks", params={"state": "pending"}).json()
    succeeded = fresh.get("/tasks", params={"state": "succeeded"}).json()

    assert by_target["total_count"] == 2
    assert {t["target"] for t in by_target["data"]} == {second["id"]}
    assert pending["total_count"] == 3
    assert first["id"] in {t["target"] for t in pending["data"]}
    assert succeeded["data"] == []
    assert by_target["url"] == "/tasks"


def test_list_tasks_type_filter_accepts_only_known_types(fresh: Client) -> None:
    fresh.create_config()

    known = fresh.get("/tasks", params={"type": "webhook_config.test"})
    unknown = fresh.get("/tasks", params={"type": "session.poll"})

    assert known.json()["total_count"] == 1
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid-parameter"
