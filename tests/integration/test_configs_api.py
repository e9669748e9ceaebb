"""The /configs/webhook endpoints over real HTTP on the local stack (docs/design.md §2-§6)."""

from __future__ import annotations

import base64
import re

import pytest
import requests

from tests.support.stack import Client, LocalStack

pytestmark = pytest.mark.integration
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_create_config_valid_url_answers_201_new_config_with_secret(dev: Client) -> None:
    response = dev.post("/configs/webhook", json={"url": "https://receiver.example/webhooks/"})

    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    config = response.json()
    assert set(config) == {
        "id",
        "resource",
        "organisation",
        "url",
        "secret",
        "previous_secret_expires",
        "rate_limit",
        "state",
        "date_created",
    }
    assert config["previous_secret_expires"] is None  # no rotation yet (docs/design.md §14)
    assert config["rate_limit"] is None  # unpaced unless asked (docs/design.md §19.1)
    assert UUID4.match(config["id"])
    assert config["resource"] == "webhook_config"
    assert config["organisation"] == dev.organisation
    assert config["url"] == "https://receiver.example/webhooks/"
    assert config["state"] == "new"
    assert DATETIME.match(config["date_created"])
    assert config["secret"].startswith("whsec_")
    assert len(base64.b64decode(config["secret"][len("whsec_") :])) == 32


def test_create_config_queues_one_test_task(dev: Client) -> None:
    config = dev.create_config()

    tasks = dev.tasks_of(config["id"])

    assert len(tasks) == 1
    assert tasks[0]["type"] == "webhook_config.test"
    assert tasks[0]["target"] == config["id"]
    assert tasks[0]["date_created"] == config["date_created"]


def test_create_config_trailing_comma_answers_400_invalid_body(dev: Client) -> None:
    response = dev.post("/configs/webhook", data='{"url": "https://receiver.example/",}')

    assert response.status_code == 400
    assert response.json()["error"] == "invalid-body"
    assert response.json()["message"]


def test_create_config_unknown_field_answers_400_and_writes_nothing(fresh: Client) -> None:
    response = fresh.post("/configs/webhook", json={"url": "https://receiver.example/", "secret": "mine"})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid-parameter"
    assert response.json()["params"] == {"secret": "unknown field"}
    assert fresh.get("/configs/webhook", params={"state": "new"}).json()["total_count"] == 0
    assert fresh.get("/tasks").json()["total_count"] == 0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://receiver.example/", "scheme"),
        ("https://user:pw@receiver.example/", "user info"),
        ("https://receiver.example/#top", "fragment"),
        ("/relative/path", "absolute"),
        ("https://receiver.example/" + "a" * 2048, "2048"),
    ],
)
def test_create_config_bad_url_answers_400_naming_the_url(dev: Client, url: str, reason: str) -> None:
    response = dev.post("/configs/webhook", json={"url": url})

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid-parameter"
    assert "url" in body["params"]
    assert reason in body["message"]


def test_create_config_http_url_allowed_on_the_local_stack(dev: Client) -> None:
    response = dev.post("/configs/webhook", json={"url": "http://127.0.0.1:9/hooks"})

    assert response.status_code == 201


def test_request_without_token_answers_401_json(stack: LocalStack) -> None:
    response = requests.get(stack.url + "/configs/webhook", timeout=10)

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_request_with_unknown_token_answers_401(stack: LocalStack) -> None:
    response = requests.get(stack.url + "/configs/webhook", headers={"Authorization": "Token nope"}, timeout=10)

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "message": "Unknown API key."}


def test_request_with_deactivated_key_answers_401(stack: LocalStack) -> None:
    organisation = stack.operator("create-organisation", "--name", "Short-lived")
    key = stack.operator("create-key", "--organisation", organisation["id"])
    stack.operator("deactivate-key", "--organisation", organisation["id"], "--key", key["id"])

    response = requests.get(
        stack.url + "/configs/webhook", headers={"Authorization": f"Token {key['token']}"}, timeout=10
    )

    assert response.status_code == 401


def test_retrieve_config_answers_the_created_config(dev: Client) -> None:
    config = dev.create_config()
    # The stack tests the config as soon as it is created; let that test end first so the
    # state read back is a settled one (the tests' stack refuses receiver.example: invalid).
    (task,) = dev.tasks_of(config["id"])
    assert dev.wait_task(task["id"])["state"] == "failed"

    response = dev.get(f"/configs/webhook/{config['id']}")

    assert response.status_code == 200
    assert response.json() == config | {"state": "invalid"}


def test_retrieve_config_of_another_organisation_answers_404(dev: Client, other: Client) -> None:
    config = dev.create_config()

    response = other.get(f"/configs/webhook/{config['id']}")

    assert response.status_code == 404
    assert response.json()["error"] == "not-found"


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_change_config_of_another_organisation_answers_404_and_changes_nothing(
    dev: Client, other: Client, method: str
) -> None:
    config = dev.create_config()

    response = other.request(method, f"/configs/webhook/{config['id']}", json={"state": "deactivated"})

    assert response.status_code == 404
    assert dev.get(f"/configs/webhook/{config['id']}").json()["state"] != "deactivated"


def test_retrieve_config_with_malformed_id_answers_404(dev: Client) -> None:
    response = dev.get("/configs/webhook/not-a-uuid")

    assert response.status_code == 404
    assert response.json()["error"] == "not-found"


def test_list_configs_newest_first_with_total_count(fresh: Client) -> None:
    created = [fresh.create_config(f"https://receiver.example/{n}") for n in range(3)]

    response = fresh.get("/configs/webhook")

    assert response.status_code == 200
    body = response.json()
    assert body["resource"] == "list"
    assert body["url"] == "/configs/webhook"
    assert [c["id"] for c in body["data"]] == [c["id"] for c in reversed(created)]
    assert body["has_more"] is False
    assert body["total_count"] == 3


def test_list_configs_pages_with_limit_and_after_id(fresh: Client) -> None:
    ids = [fresh.create_config(f"https://receiver.example/{n}")["id"] for n in range(5)][::-1]

    first = fresh.get("/configs/webhook", params={"limit": 2}).json()
    second = fresh.get("/configs/webhook", params={"limit": 2, "after_id": first["data"][-1]["id"]}).json()
    last = fresh.get("/configs/webhook", params={"limit": 2, "after_id": second["data"][-1]["id"]}).json()

    assert [c["id"] for c in first["data"]] == ids[0:2]
    assert [c["id"] for c in second["data"]] == ids[2:4]
    assert [c["id"] for c in last["data"]] == ids[4:5]
    assert (first["has_more"], second["has_more"], last["has_more"]) == (True, True, False)
    assert {first["total_count"], second["total_count"], last["total_count"]} == {5}


def test_list_configs_before_id_stops_before_the_cursor(fresh: Client) -> None:
    ids = [fresh.create_config(f"https://receiver.example/{n}")["id"] for n in range(4)][::-1]

    body = fresh.get("/configs/webhook", params={"before_id": ids[2]}).json()

    assert [c["id"] for c in body["data"]] == ids[0:2]


def test_list_configs_hides_deactivated_unless_asked(fresh: Client) -> None:
    kept = fresh.create_config("https://receiver.example/kept")
    gone = fresh.create_config("https://receiver.example/gone")
    assert fresh.delete(f"/configs/webhook/{gone['id']}").status_code == 200

    plain = fresh.get("/configs/webhook").json()
    deactivated = fresh.get("/configs/webhook", params={"state": "deactivated"}).json()

    assert [c["id"] for c in plain["data"]] == [kept["id"]]
    assert [c["id"] for c in deactivated["data"]] == [gone["id"]]
    assert deactivated["data"][0]["state"] == "deactivated"


def test_list_configs_date_created_filters_and_bracket_alias(fresh: Client) -> None:
    first = fresh.create_config()
    second = fresh.create_config()

    after_first = fresh.get("/configs/webhook", params={"date_created__gt": first["date_created"]}).json()
    up_to_first = fresh.get("/configs/webhook", params={"date_created[lte]": first["date_created"]}).json()

    assert [c["id"] for c in after_first["data"]] == [second["id"]]
    assert [c["id"] for c in up_to_first["data"]] == [first["id"]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"state": "gone"},
        {"colour": "red"},
        {"after_id": "123"},
        {"date_created__gte": "yesterday"},
    ],
)
def test_list_configs_bad_query_answers_400_invalid_parameter(dev: Client, params: dict[str, str]) -> None:
    response = dev.get("/configs/webhook", params=params)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid-parameter"


def test_list_configs_other_organisation_sees_none_of_them(dev: Client, fresh: Client) -> None:
    dev.create_config()

    body = fresh.get("/configs/webhook").json()

    assert body["data"] == []
    assert body["total_count"] == 0


def test_update_config_url_makes_it_new_and_queues_a_test(dev: Client) -> None:
    config = dev.create_config()

    response = dev.post(f"/configs/webhook/{config['id']}", json={"url": "https://receiver.example/moved"})

    assert response.status_code == 200
    assert response.json()["url"] == "https://receiver.example/moved"
    assert response.json()["state"] == "new"
    assert response.json()["secret"] == config["secret"]
    assert len(dev.tasks_of(config["id"])) == 2


def test_update_config_state_invalid_value_answers_400(dev: Client) -> None:
    config = dev.create_config()

    response = dev.post(f"/configs/webhook/{config['id']}", json={"state": "valid"})

    assert response.status_code == 400
    assert response.json()["params"] == {"state": "must be one of new, deactivated"}


def test_update_deactivated_config_url_only_stores_url_without_test(dev: Client) -> None:
    config = dev.create_config()
    dev.delete(f"/configs/webhook/{config['id']}")

    response = dev.post(f"/configs/webhook/{config['id']}", json={"url": "https://receiver.example/later"})

    assert response.json()["state"] == "deactivated"
    assert response.json()["url"] == "https://receiver.example/later"
    assert len(dev.tasks_of(config["id"])) == 1


def test_update_deactivated_config_state_new_reactivates_and_tests(dev: Client) -> None:
    config = dev.create_config()
    dev.delete(f"/configs/webhook/{config['id']}")

    response = dev.post(f"/configs/webhook/{config['id']}", json={"state": "new"})

    assert response.json()["state"] == "new"
    assert len(dev.tasks_of(config["id"])) == 2


def test_test_config_answers_201_pending_task(dev: Client) -> None:
    config = dev.create_config()
    (first,) = dev.tasks_of(config["id"])
    dev.wait_task(first["id"])  # while it is open, a test answers that task instead

    response = dev.post(f"/configs/webhook/{config['id']}/test")

    assert response.status_code == 201
    task = response.json()
    assert task["resource"] == "task"
    assert task["type"] == "webhook_config.test"
    assert task["target"] == config["id"]
    assert task["state"] == "pending"
    assert task["error"] is None
    assert task["result"] is None
    stored = dev.get(f"/tasks/{task['id']}").json()  # the consumer may have started it already
    assert {k: stored[k] for k in ("id", "type", "target", "key", "date_created")} == {
        k: task[k] for k in ("id", "type", "target", "key", "date_created")
    }


def test_test_config_null_body_accepted(dev: Client) -> None:
    config = dev.create_config()

    response = dev.post(f"/configs/webhook/{config['id']}/test", data="null")

    assert response.status_code == 201


def test_test_deactivated_config_answers_400_invalid_state(dev: Client) -> None:
    config = dev.create_config()
    dev.delete(f"/configs/webhook/{config['id']}")

    response = dev.post(f"/configs/webhook/{config['id']}/test")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid-state"
    assert len(dev.tasks_of(config["id"])) == 1


def test_delete_config_answers_200_deactivated_and_is_repeatable(dev: Client) -> None:
    config = dev.create_config()

    first = dev.delete(f"/configs/webhook/{config['id']}")
    second = dev.delete(f"/configs/webhook/{config['id']}")

    assert first.status_code == second.status_code == 200
    assert first.json()["state"] == second.json()["state"] == "deactivated"


def test_unknown_route_answers_404_json(dev: Client) -> None:
    response = dev.get("/configs/storage")

    assert response.status_code == 404
    assert response.json()["error"] == "not-found"
