"""The /tasks endpoints over real HTTP on the local stack."""

from __future__ import annotations

import pytest

from devstack.receiver import Receiver
from tests.support.stack import Client

pytestmark = pytest.mark.integration


def test_retrieve_task_of_another_organisation_answers_404(dev: Client, other: Client) -> None:
    config = dev.create_config()
    task = dev.post(f"/configs/webhook/{config['id']}/test").json()

    response = other.get(f"/tasks/{task['id']}")

    assert response.status_code == 404
    assert response.json()["error"] == "not-found"


def test_list_tasks_filters_by_target_and_state(fresh: Client, receiver: Receiver) -> None:
    _, first_task = fresh.create_and_wait(receiver.url("/ok/filters/"))
    second = fresh.create_config(receiver.url("/status/500/filters/"))
    second_tasks = [fresh.wait_task(fresh.tasks_of(second["id"])[0]["id"])]  # ended: a test makes a new task
    second_tasks.append(fresh.post(f"/configs/webhook/{second['id']}/test").json())
    fresh.wait_task(second_tasks[-1]["id"])

    by_target = fresh.get("/tasks", params={"target": second["id"]}).json()
    failed = fresh.get("/tasks", params={"state": "failed"}).json()
    succeeded = fresh.get("/tasks", params={"state": "succeeded"}).json()
    pending = fresh.get("/tasks", params={"state": "pending"}).json()

    assert by_target["total_count"] == 2
    assert {t["id"] for t in by_target["data"]} == {t["id"] for t in second_tasks}
    assert {t["id"] for t in failed["data"]} == {t["id"] for t in second_tasks}
    assert [t["id"] for t in succeeded["data"]] == [first_task["id"]]
    assert pending["data"] == []
    assert by_target["url"] == "/tasks"


def test_list_tasks_type_filter_accepts_only_known_types(fresh: Client) -> None:
    fresh.create_config()

    known = fresh.get("/tasks", params={"type": "webhook_config.test"})
    unknown = fresh.get("/tasks", params={"type": "session.poll"})

    assert known.json()["total_count"] == 1
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid-parameter"
