"""Keys, the organisation default and event delivery on the local stack: events published
with the operator command line arrive signed where the routing rules send them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from devstack.receiver import Receiver
from tests.support.stack import Client, LocalStack

pytestmark = pytest.mark.integration


def publish(stack: LocalStack, client: Client, key: str | None = None, **data: Any) -> dict[str, Any]:
    args = ["publish-event", "--organisation", client.organisation, "--type", "session", "--action", "completed"]
    if key:
        args += ["--key", key]
    return stack.operator(*args, "--data", json.dumps(data))


def test_get_key_answers_the_calling_key(fresh: Client) -> None:
    response = fresh.get("/key")

    assert response.status_code == 200
    assert response.json() == {
        "id": fresh.key,
        "resource": "key",
        "organisation": fresh.organisation,
        "webhook_config": None,
        "state": "active",
        "date_created": response.json()["date_created"],
    }


def test_organisation_starts_unconfigured_with_an_empty_config_list(fresh: Client) -> None:
    organisation = fresh.get("/organisation").json()

    assert organisation["id"] == fresh.organisation
    assert organisation["resource"] == "organisation"
    assert organisation["webhook_config_default"] is None
    assert organisation["state"] == "unconfigured"
    assert organisation["webhook_configs"] == {
        "resource": "list",
        "data": [],
        "has_more": False,
        "total_count": 0,
        "url": "/configs/webhook",
    }


def test_event_goes_to_the_default_then_to_the_key_override(
    stack: LocalStack, fresh: Client, receiver: Receiver
) -> None:
    default, _ = fresh.create_and_wait(receiver.url("/ok/org-default/"))
    override, _ = fresh.create_and_wait(receiver.url("/ok/key-override/"))
    assert fresh.post("/organisation", json={"webhook_config_default": default["id"]}).status_code == 200
    assert fresh.get("/organisation").json()["state"] == "active"

    first = publish(stack, fresh, key=fresh.key, n=1)
    delivered_first = fresh.wait_event(first["id"])
    assert (
        fresh.post(f"/keys/{fresh.key}", json={"webhook_config": override["id"]}).json()["webhook_config"]
        == (override["id"])
    )
    second = publish(stack, fresh, key=fresh.key, n=2)
    delivered_second = fresh.wait_event(second["id"])

    at_default = receiver.wait_for(f"/ok/org-default/{first['id']}")
    at_override = receiver.wait_for(f"/ok/key-override/{second['id']}")
    assert (delivered_first["state"], delivered_first["webhook_config"]) == ("delivered", default["id"])
    assert (delivered_second["state"], delivered_second["webhook_config"]) == ("delivered", override["id"])
    assert delivered_second["retries"] == 0
    assert json.loads(at_default.body)["data"] == {"n": 1}
    assert Webhook(default["secret"]).verify(at_default.body, at_default.headers)["id"] == first["id"]
    assert Webhook(override["secret"]).verify(at_override.body, at_override.headers)["id"] == second["id"]


def test_event_with_no_config_fails_unconfigured(stack: LocalStack, fresh: Client) -> None:
    event = publish(stack, fresh)

    ended = fresh.wait_event(event["id"])

    assert (ended["state"], ended["error"], ended["webhook_config"]) == ("failed", "unconfigured", None)


def test_events_list_filters_by_type_action_and_state(stack: LocalStack, fresh: Client) -> None:
    event = publish(stack, fresh)
    fresh.wait_event(event["id"])

    by_type = fresh.get("/events", params={"type": "session", "action": "completed"}).json()
    failed = fresh.get("/events", params={"state": "failed"}).json()
    other_action = fresh.get("/events", params={"type": "session", "action": "started"}).json()

    assert [e["id"] for e in by_type["data"]] == [event["id"]]
    assert by_type["url"] == "/events"
    assert [e["id"] for e in failed["data"]] == [event["id"]]
    assert other_action["data"] == []
    assert fresh.get("/events", params={"state": "lost"}).status_code == 400


def test_test_events_are_listed_as_webhook_config_events(fresh: Client, receiver: Receiver) -> None:
    fresh.create_and_wait(receiver.url("/ok/listed/"))

    listed = fresh.get("/events", params={"type": "webhook_config", "action": "test"}).json()

    assert listed["total_count"] == 1
    assert listed["data"][0]["state"] == "delivered"
    assert "secret" not in listed["data"][0]["data"]


def test_another_organisation_gets_404_for_keys_events_and_configs_it_does_not_own(
    stack: LocalStack, fresh: Client, other: Client
) -> None:
    event = publish(stack, fresh)
    config = fresh.create_config()

    assert other.get(f"/events/{event['id']}").status_code == 404
    assert other.post(f"/keys/{fresh.key}", json={"webhook_config": None}).status_code == 404
    assert other.get("/events", params={"type": "session"}).json()["total_count"] == 0
    refused = other.post("/organisation", json={"webhook_config_default": config["id"]})
    assert refused.status_code == 400
    assert refused.json()["params"] == {"webhook_config_default": "no such webhook_config"}


def test_key_cannot_point_at_a_deactivated_config(fresh: Client) -> None:
    config = fresh.create_config()
    fresh.delete(f"/configs/webhook/{config['id']}")

    response = fresh.post(f"/keys/{fresh.key}", json={"webhook_config": config["id"]})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid-state"


def test_ricloud_client_key_and_organisation_calls(stack: LocalStack, fresh: Client) -> None:
    config = fresh.create_config()
    seen = stack.official_client(fresh.token, "ricloud_keys.py", config["id"])

    assert seen["current_key"] == fresh.key
    assert seen["updated_config"] == config["id"]
    assert seen["organisation"] == fresh.organisation
    assert seen["organisation_configs"] == [config["id"]]
    assert fresh.get("/key").json()["webhook_config"] == config["id"]
