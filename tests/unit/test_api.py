"""The HTTP contract of the real function handlers, driven by API Gateway HTTP API events:
status codes, JSON error bodies, authentication, and how failures are mapped."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest

from tests.unit.support import (
    FakeQueue,
    FakeServices,
    emf_metrics,
    http_event,
    json_lines,
    load_function,
    response_body,
)
from webhook_service import admin
from webhook_service.auth import hash_token
from webhook_service.errors import DependencyError, ThrottledError
from webhook_service.storage.configs import Configs
from webhook_service.storage.store import Store

CREATE = load_function("create_webhook_config")
GET = load_function("get_webhook_config")
LIST = load_function("list_webhook_configs")
UPDATE = load_function("update_webhook_config")
TEST = load_function("test_webhook_config")
DELETE = load_function("delete_webhook_config")
GET_TASK = load_function("get_task")
LIST_TASKS = load_function("list_tasks")
NOT_FOUND = load_function("not_found")

URL = "https://receiver.example/hooks"
REQUEST_ID = "req-7f3c2a"


@pytest.fixture
def token(installed_services: FakeServices, organisation: str) -> str:
    """A key of the test's organisation, with the services the handlers use installed."""
    return admin.create_key(installed_services.store.organisations, organisation)[1]


def call(handler: Any, event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = handler(event, None)
    return response


def create_event(token: str | None, body: str | None = None, **kwargs: Any) -> dict[str, Any]:
    return http_event(
        "POST", "/configs/webhook", token=token, body=json.dumps({"url": URL}) if body is None else body, **kwargs
    )


def config_event(
    method: str, token: str, config_id: str, suffix: str = "", body: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    path = f"/configs/webhook/{config_id}{suffix}"
    return http_event(
        method,
        path,
        route=f"{method} /configs/webhook/{{id}}{suffix}",
        token=token,
        body=body,
        path_params={"id": config_id},
        **kwargs,
    )


def created(token: str) -> dict[str, Any]:
    response = call(CREATE.handler, create_event(token))
    assert response["statusCode"] == 201
    return response_body(response)


class FailingConfigs(Configs):
    """The real configs, except that reading one raises what it is given."""

    def __init__(self, inner: Store, error: Exception) -> None:
        super().__init__(inner.table, inner.organisations)
        self.error = error

    def get(self, organisation: str, config_id: str) -> Any:
        raise self.error


class FailingStore(Store):
    """The real store, except that reading a config raises what it is given."""

    def __init__(self, inner: Store, error: Exception) -> None:
        super().__init__(inner.table.name, inner.table.client)
        self.configs = FailingConfigs(inner, error)


# -- authentication --------------------------------------------------------------------------


def test_handler_no_authorization_answers_401_unauthorized_json(installed_services: FakeServices) -> None:
    response = call(CREATE.handler, create_event(token=None))

    body = response_body(response)
    assert response["statusCode"] == 401
    assert response["headers"]["Content-Type"] == "application/json"
    assert body["error"] == "unauthorized"
    assert body["message"]


def test_handler_answer_is_one_json_line_ending_in_a_newline(token: str) -> None:
    """In a terminal, curl prints the answer as it is: without a final newline the next
    prompt ran into it."""
    answers = [call(CREATE.handler, create_event(token=None)), call(CREATE.handler, create_event(token))]
    for response in answers:
        assert response["body"].endswith("}\n")
        assert response["body"].count("\n") == 1
        assert isinstance(json.loads(response["body"]), dict)


@pytest.mark.parametrize("header", ["Bearer abc", "Token", "Token a b", "Basic dXNlcjpwdw=="])
def test_handler_malformed_authorization_answers_401(installed_services: FakeServices, header: str) -> None:
    event = http_event("GET", "/configs/webhook", headers={"Authorization": header})

    response = call(LIST.handler, event)

    assert (response["statusCode"], response_body(response)["error"]) == (401, "unauthorized")


def test_handler_unknown_token_answers_401_without_echoing_it(installed_services: FakeServices) -> None:
    unknown = "rwk_" + uuid.uuid4().hex

    response = call(LIST.handler, http_event("GET", "/configs/webhook", token=unknown))

    assert (response["statusCode"], response_body(response)["error"]) == (401, "unauthorized")
    assert unknown not in response["body"]


def test_handler_deactivated_key_answers_401(installed_services: FakeServices, organisation: str) -> None:
    key, token = admin.create_key(installed_services.store.organisations, organisation)
    admin.deactivate_key(installed_services.store.organisations, organisation, key["id"])

    response = call(LIST.handler, http_event("GET", "/configs/webhook", token=token))

    assert (response["statusCode"], response_body(response)["error"]) == (401, "unauthorized")


def test_handler_mixed_case_authorization_header_is_read(token: str) -> None:
    event = http_event("GET", "/configs/webhook", headers={"AUTHORIZATION": f"Token {token}"})

    assert call(LIST.handler, event)["statusCode"] == 200


def test_not_found_no_authorization_answers_401_before_404(installed_services: FakeServices) -> None:
    response = call(NOT_FOUND.handler, http_event("GET", "/nowhere", route="$default"))

    assert response["statusCode"] == 401


# -- bodies --------------------------------------------------------------------------------------


def test_create_handler_trailing_comma_answers_400_invalid_body(token: str) -> None:
    response = call(CREATE.handler, create_event(token, body='{"url": "https://receiver.example/hooks",}'))

    assert (response["statusCode"], response_body(response)["error"]) == (400, "invalid-body")


@pytest.mark.parametrize("body", ["[]", '"x"', "not json", '{"url": NaN}', '{"url": "a", "url": "b"}'])
def test_create_handler_non_object_or_bad_json_answers_400_invalid_body(token: str, body: str) -> None:
    response = call(CREATE.handler, create_event(token, body=body))

    assert (response["statusCode"], response_body(response)["error"]) == (400, "invalid-body")


def test_create_handler_body_over_16_kib_answers_400_invalid_body(token: str) -> None:
    body = json.dumps({"url": URL + "?" + "a" * 17000})

    response = call(CREATE.handler, create_event(token, body=body))

    assert (response["statusCode"], response_body(response)["error"]) == (400, "invalid-body")


def test_create_handler_huge_body_answers_400_invalid_body(token: str) -> None:
    response = call(CREATE.handler, create_event(token, body="{" + " " * 100_000 + "}"))

    assert (response["statusCode"], response_body(response)["error"]) == (400, "invalid-body")


def test_create_handler_deeply_nested_body_answers_400_not_500(token: str) -> None:
    body = '{"url":' + "[" * 8000 + "]" * 8000 + "}"

    response = call(CREATE.handler, create_event(token, body=body))

    assert (response["statusCode"], response_body(response)["error"]) == (400, "invalid-body")


def test_create_handler_unknown_field_answers_400_invalid_parameter_naming_it(token: str) -> None:
    response = call(CREATE.handler, create_event(token, body=json.dumps({"url": URL, "secret": "whsec_mine"})))

    assert response["statusCode"] == 400
    assert response_body(response) == {
        "error": "invalid-parameter",
        "message": "Unknown field 'secret'.",
        "params": {"secret": "unknown field"},
    }


def test_create_handler_http_url_answers_400_with_url_param(token: str) -> None:
    response = call(CREATE.handler, create_event(token, body=json.dumps({"url": "http://receiver.example/"})))

    assert response["statusCode"] == 400
    assert response_body(response)["params"] == {"url": "must be an absolute https URL"}


def test_create_handler_base64_encoded_body_is_decoded(token: str) -> None:
    event = create_event(token, body=json.dumps({"url": URL}), base64_body=True)

    response = call(CREATE.handler, event)

    assert (response["statusCode"], response_body(response)["url"]) == (201, URL)


def test_create_handler_invalid_base64_body_answers_400_invalid_body(token: str) -> None:
    event = create_event(token)
    event["isBase64Encoded"] = True
    event["body"] = "not*base64!"

    response = call(CREATE.handler, event)

    assert (response["statusCode"], response_body(response)["error"]) == (400, "invalid-body")


# -- success paths ---------------------------------------------------------------------------------


def test_create_handler_valid_url_answers_201_config_with_secret(token: str, queue: FakeQueue) -> None:
    response = call(CREATE.handler, create_event(token, request_id=REQUEST_ID))

    body = response_body(response)
    assert response["statusCode"] == 201
    assert (body["resource"], body["state"], body["url"]) == ("webhook_config", "new", URL)
    assert body["secret"].startswith("whsec_")
    assert response["headers"]["X-Request-Id"] == REQUEST_ID
    assert len(queue.jobs) == 1


def test_get_handler_own_config_answers_200_config(token: str) -> None:
    config = created(token)

    response = call(GET.handler, config_event("GET", token, config["id"]))

    assert (response["statusCode"], response_body(response)) == (200, config)


def test_get_handler_other_organisations_config_answers_404(token: str, installed_services: FakeServices) -> None:
    other_org = admin.create_organisation(installed_services.store.organisations, "Other")["id"]
    other_token = admin.create_key(installed_services.store.organisations, other_org)[1]
    theirs = created(other_token)

    response = call(GET.handler, config_event("GET", token, theirs["id"]))

    assert (response["statusCode"], response_body(response)["error"]) == (404, "not-found")


def test_get_handler_malformed_id_answers_404(token: str) -> None:
    response = call(GET.handler, config_event("GET", token, "not-an-id"))

    assert (response["statusCode"], response_body(response)["error"]) == (404, "not-found")


def test_list_handler_limit_answers_200_list_page(token: str) -> None:
    created(token)
    second = created(token)
    event = http_event("GET", "/configs/webhook", token=token, query={"limit": "1"})

    response = call(LIST.handler, event)

    assert response["statusCode"] == 200
    assert response_body(response) == {
        "resource": "list",
        "data": [second],
        "has_more": True,
        "total_count": 2,
        "url": "/configs/webhook",
        "next_after_id": second["id"],
    }


def test_list_handler_bad_limit_answers_400_invalid_parameter(token: str) -> None:
    event = http_event("GET", "/configs/webhook", token=token, query={"limit": "0"})

    response = call(LIST.handler, event)

    assert (response["statusCode"], response_body(response)["params"]) == (400, {"limit": "must be 1..1000"})


@pytest.mark.parametrize(
    "query",
    [{"limit": "\u00b2"}, {"date_created__gte": "9999-12-31T23:59:59-01:00"}],  # superscript 2; past datetime.max
)
def test_list_handler_odd_query_value_answers_400_not_500(token: str, query: dict[str, str]) -> None:
    response = call(LIST.handler, http_event("GET", "/configs/webhook", token=token, query=query))

    assert (response["statusCode"], response_body(response)["error"]) == (400, "invalid-parameter")


def test_update_handler_new_url_answers_200_config_in_state_new(token: str) -> None:
    config = created(token)
    body = json.dumps({"url": "https://elsewhere.example/"})

    response = call(UPDATE.handler, config_event("POST", token, config["id"], body=body))

    assert response["statusCode"] == 200
    assert (response_body(response)["url"], response_body(response)["state"]) == ("https://elsewhere.example/", "new")


def test_test_handler_null_body_answers_201_pending_task(token: str) -> None:
    config = created(token)

    response = call(TEST.handler, config_event("POST", token, config["id"], "/test", body="null"))

    body = response_body(response)
    assert response["statusCode"] == 201
    assert (body["resource"], body["target"], body["state"]) == ("task", config["id"], "pending")


def test_test_handler_deactivated_config_answers_400_invalid_state(token: str) -> None:
    config = created(token)
    call(DELETE.handler, config_event("DELETE", token, config["id"]))

    response = call(TEST.handler, config_event("POST", token, config["id"], "/test"))

    assert (response["statusCode"], response_body(response)["error"]) == (400, "invalid-state")


def test_delete_handler_own_config_answers_200_deactivated(token: str) -> None:
    config = created(token)

    response = call(DELETE.handler, config_event("DELETE", token, config["id"]))

    assert (response["statusCode"], response_body(response)["state"]) == (200, "deactivated")


def test_task_handlers_created_config_task_is_listed_and_retrievable(token: str) -> None:
    config = created(token)
    listed = call(LIST_TASKS.handler, http_event("GET", "/tasks", token=token, query={"target": config["id"]}))
    (task,) = response_body(listed)["data"]
    event = http_event(
        "GET", f"/tasks/{task['id']}", route="GET /tasks/{id}", token=token, path_params={"id": task["id"]}
    )

    response = call(GET_TASK.handler, event)

    assert (response["statusCode"], response_body(response)) == (200, task)


def test_not_found_handler_any_route_answers_404_not_found(token: str) -> None:
    response = call(NOT_FOUND.handler, http_event("PUT", "/configs", route="$default", token=token))

    assert response["statusCode"] == 404
    assert response_body(response)["error"] == "not-found"
    assert response["headers"]["Content-Type"] == "application/json"


# -- failures ----------------------------------------------------------------------------------------


def test_handler_unexpected_exception_answers_500_with_request_id_and_no_traceback(
    token: str, installed_services: FakeServices
) -> None:
    installed_services.store = FailingStore(installed_services.store, RuntimeError("boom at line 42"))

    response = call(GET.handler, config_event("GET", token, str(uuid.uuid4()), request_id=REQUEST_ID))

    body = response_body(response)
    assert (response["statusCode"], body["error"]) == (500, "internal-error")
    assert REQUEST_ID in body["message"]
    assert "Traceback" not in response["body"]
    assert "boom" not in response["body"]


def failures(capfd: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    """The dimensions of every `Failures` count written since the last read."""
    return [dims for name, dims, _ in emf_metrics(json_lines(capfd.readouterr().out)) if name == "Failures"]


@pytest.mark.parametrize(("error", "status"), [(RuntimeError("boom"), 500), (DependencyError("down"), 503)])
def test_a_5xx_answer_counts_a_failure_of_the_function_for_its_rollback_alarm(
    token: str,
    installed_services: FakeServices,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ricloud-webhooks-dev-GetWebhookConfigFunction-X1")
    installed_services.store = FailingStore(installed_services.store, error)
    capfd.readouterr()

    response = call(GET.handler, config_event("GET", token, str(uuid.uuid4())))

    assert response["statusCode"] == status
    assert failures(capfd) == [{"service": "webhooks", "function": "ricloud-webhooks-dev-GetWebhookConfigFunction-X1"}]


def test_a_4xx_answer_is_no_failure_of_the_function(token: str, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()

    response = call(GET.handler, config_event("GET", token, str(uuid.uuid4())))

    assert response["statusCode"] == 404
    assert failures(capfd) == []


def test_handler_dependency_error_answers_503_unavailable(token: str, installed_services: FakeServices) -> None:
    installed_services.store = FailingStore(installed_services.store, DependencyError("InternalServerError"))

    response = call(GET.handler, config_event("GET", token, str(uuid.uuid4())))

    assert (response["statusCode"], response_body(response)["error"]) == (503, "unavailable")


def test_handler_throttled_error_answers_429_limit_exceeded_with_retry_after(
    token: str, installed_services: FakeServices
) -> None:
    installed_services.store = FailingStore(installed_services.store, ThrottledError("ThrottlingException"))

    response = call(GET.handler, config_event("GET", token, str(uuid.uuid4())))

    assert (response["statusCode"], response_body(response)["error"]) == (429, "limit-exceeded")
    assert response["headers"]["Retry-After"].isdigit()


def test_create_handler_queue_unavailable_answers_503_naming_config_and_task(
    token: str, installed_services: FakeServices
) -> None:
    installed_services.queue = FakeQueue(fail=True)

    response = call(CREATE.handler, create_event(token))

    body = response_body(response)
    assert (response["statusCode"], body["error"]) == (503, "unavailable")
    assert set(body["params"]) == {"webhook_config", "task"}


def test_create_handler_any_request_logs_neither_token_nor_secret(token: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="webhooks"):
        response = call(CREATE.handler, create_event(token))
    secret = response_body(response)["secret"]

    ours = [record for record in caplog.records if record.name == "webhooks"]
    logged = " ".join(f"{record.getMessage()} {record.__dict__}" for record in ours)

    assert "config created" in logged
    assert token not in logged
    assert hash_token(token) not in logged
    assert secret not in logged
