"""Tenancy, route by route: a second organisation's key gets 404 for every resource of the
first organisation, and sees none of them in any list (docs/design.md §2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from devstack.receiver import Receiver
from tests.support.stack import Client, LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def owned(stack: LocalStack, receiver: Receiver) -> dict[str, Any]:
    """One organisation with a valid config, a task, an event and a second key."""
    organisation = stack.operator("create-organisation", "--name", "Owner")
    key = stack.operator("create-key", "--organisation", organisation["id"])
    owner = Client(stack.url, key["token"], organisation["id"], key["id"])
    config, task = owner.create_and_wait(receiver.url("/ok/tenancy/"))
    second_key = stack.operator("create-key", "--organisation", organisation["id"])
    owner.post("/organisation", json={"webhook_config_default": config["id"]})
    event = stack.operator(
        "publish-event", "--organisation", organisation["id"], "--type", "session", "--action", "done"
    )
    owner.wait_event(event["id"])
    return {"owner": owner, "config": config, "task": task, "event": event, "second_key": second_key}


Request = Callable[[Client, dict[str, Any]], requests.Response]

FOREIGN_RESOURCE_ROUTES: dict[str, Request] = {
    "GET /configs/webhook/{id}": lambda c, o: c.get(f"/configs/webhook/{o['config']['id']}"),
    "POST /configs/webhook/{id}": lambda c, o: c.post(
        f"/configs/webhook/{o['config']['id']}", json={"url": "https://x.example/"}
    ),
    "POST /configs/webhook/{id}/test": lambda c, o: c.post(f"/configs/webhook/{o['config']['id']}/test"),
    "DELETE /configs/webhook/{id}": lambda c, o: c.delete(f"/configs/webhook/{o['config']['id']}"),
    "GET /tasks/{id}": lambda c, o: c.get(f"/tasks/{o['task']['id']}"),
    "GET /events/{id}": lambda c, o: c.get(f"/events/{o['event']['id']}"),
    "POST /keys/{id}": lambda c, o: c.post(f"/keys/{o['second_key']['id']}", json={"webhook_config": None}),
    "GET /events/{id}/attempts": lambda c, o: c.get(f"/events/{o['event']['id']}/attempts"),
    "POST /events/{id}/resend": lambda c, o: c.post(f"/events/{o['event']['id']}/resend", json={}),
    "POST /configs/webhook/{id}/rotate_secret": lambda c, o: c.post(
        f"/configs/webhook/{o['config']['id']}/rotate_secret", json={"overlap_seconds": 0}
    ),
}


@pytest.mark.parametrize("route", sorted(FOREIGN_RESOURCE_ROUTES))
def test_foreign_resource_answers_404_and_is_left_unchanged(route: str, other: Client, owned: dict[str, Any]) -> None:
    response = FOREIGN_RESOURCE_ROUTES[route](other, owned)

    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not-found"
    owner: Client = owned["owner"]
    assert owner.get(f"/configs/webhook/{owned['config']['id']}").json() == owned["config"] | {"state": "valid"}
    assert len(owner.tasks_of(owned["config"]["id"])) == 1
    event = owner.get(f"/events/{owned['event']['id']}").json()
    assert (event["state"], event["retries"]) == ("delivered", 0)


LISTS = {
    "GET /configs/webhook": ("/configs/webhook", {}),
    "GET /configs/webhook?state=valid": ("/configs/webhook", {"state": "valid"}),
    "GET /tasks": ("/tasks", {}),
    "GET /tasks?target=<foreign config>": ("/tasks", {"target": "config"}),
    "GET /events": ("/events", {}),
    "GET /events?type=session": ("/events", {"type": "session"}),
}


@pytest.mark.parametrize("name", sorted(LISTS))
def test_lists_show_nothing_of_another_organisation(name: str, fresh: Client, owned: dict[str, Any]) -> None:
    path, params = LISTS[name]
    params = {k: owned["config"]["id"] if v == "config" else v for k, v in params.items()}

    body = fresh.get(path, params=params).json()

    assert body["data"] == []
    assert body["total_count"] == 0


def test_foreign_cursor_is_refused_not_followed(fresh: Client, owned: dict[str, Any]) -> None:
    response = fresh.get("/configs/webhook", params={"after_id": owned["config"]["id"]})

    assert response.status_code == 400
    assert response.json()["params"] == {"after_id": "no such webhook_config"}


def test_own_key_organisation_and_defaults_never_reveal_another_organisation(
    fresh: Client, owned: dict[str, Any]
) -> None:
    organisation = fresh.get("/organisation").json()
    key = fresh.get("/key").json()
    pointed = fresh.post("/organisation", json={"webhook_config_default": owned["config"]["id"]})

    assert organisation["id"] == fresh.organisation
    assert organisation["webhook_configs"]["total_count"] == 0
    assert key["organisation"] == fresh.organisation
    assert pointed.status_code == 400
    assert pointed.json()["params"] == {"webhook_config_default": "no such webhook_config"}
