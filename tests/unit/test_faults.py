"""Faults on every write path: DynamoDB failing or throttling (injected into the real
client), SQS refusing, and the consumer crashing mid-batch. Each ends in the error of docs/design.md §3 or
a retried message, never in a half-written config or a stuck task."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.unit.support import (
    Backing,
    FakeClock,
    FakeQueue,
    FakeSender,
    FakeServices,
    as_dynamodb,
    count_partition,
    http_event,
    load_function,
    sqs_event,
)
from webhook_service import admin, wiring
from webhook_service.consumer import handle_batch
from webhook_service.domain.configs import TaskState
from webhook_service.domain.tenants import KeyState
from webhook_service.jobs.deliverer import Deliverer
from webhook_service.service import configs as config_cases
from webhook_service.service import context as service_context
from webhook_service.service import tasks as task_cases
from webhook_service.storage.store import Store
from webhook_service.wiring import use_deliverer

URL = "https://receiver.example/hooks/"


class FaultyClient:
    """The real client, except that the named method raises the given AWS error code."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.failing: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        code = self.failing.get(name)
        if code is None:
            return attribute

        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, name)

        return fail


@pytest.fixture
def faulty(installed_services: FakeServices, backing: Backing) -> FaultyClient:
    client = FaultyClient(backing.dynamodb)
    installed_services.store = Store(backing.table_name, as_dynamodb(client))
    installed_services.authenticator.store = installed_services.store.organisations
    return client


@pytest.fixture
def token(installed_services: FakeServices, organisation: str) -> str:
    _, token = admin.create_key(installed_services.store.organisations, organisation)
    return token


def call(function: str, method: str, path: str, token: str, body: Any = None, **params: str) -> dict[str, Any]:
    event = http_event(
        method,
        path,
        token=token,
        body=None if body is None else json.dumps(body),
        path_params=params or None,
    )
    response: dict[str, Any] = load_function(function).handler(event, None)
    return response


WRITE_PATHS: dict[
    str, tuple[str, str, str, Callable[[dict[str, Any]], Any], Callable[[dict[str, Any]], dict[str, str]]]
] = {
    "create config": ("create_webhook_config", "POST", "/configs/webhook", lambda s: {"url": URL}, lambda s: {}),
    "update config": (
        "update_webhook_config",
        "POST",
        "/configs/webhook/x",
        lambda s: {"url": URL + "v2"},
        lambda s: {"id": s["config"]},
    ),
    "test config": (
        "test_webhook_config",
        "POST",
        "/configs/webhook/x/test",
        lambda s: None,
        lambda s: {"id": s["config"]},
    ),
    "delete config": (
        "delete_webhook_config",
        "DELETE",
        "/configs/webhook/x",
        lambda s: None,
        lambda s: {"id": s["config"]},
    ),
    "set key config": (
        "update_key",
        "POST",
        "/keys/x",
        lambda s: {"webhook_config": s["config"]},
        lambda s: {"id": s["key"]},
    ),
    "set default": (
        "update_organisation",
        "POST",
        "/organisation",
        lambda s: {"webhook_config_default": s["config"]},
        lambda s: {},
    ),
}


@pytest.fixture
def seeded(installed_services: FakeServices, organisation: str, token: str) -> dict[str, str]:
    """A config whose first test has ended (so it can be tested again) and a second key,
    made before any fault is injected."""
    from webhook_service.domain.tenants import Principal

    caller = Principal(key_id="seed", organisation=organisation, state=KeyState.ACTIVE)
    config = config_cases.create_config(installed_services, caller, {"url": URL})
    store = installed_services.store
    (first,) = task_cases.list_tasks(installed_services, caller, {"target": config["id"]})["data"]
    task = store.configs.get_task(organisation, first["id"])
    assert task is not None
    assert store.configs.end_task(replace(task, state=TaskState.SUCCEEDED, date_completed=installed_services.clock()))
    key, _ = admin.create_key(installed_services.store.organisations, organisation)
    return {"config": config["id"], "key": key["id"]}


@pytest.mark.parametrize("path", sorted(WRITE_PATHS))
@pytest.mark.parametrize(
    ("code", "status", "error"),
    [("InternalServerError", 503, "unavailable"), ("ProvisionedThroughputExceededException", 429, "limit-exceeded")],
)
def test_write_path_dynamodb_fault_answers_spec_error_and_writes_nothing(
    path: str,
    code: str,
    status: int,
    error: str,
    faulty: FaultyClient,
    seeded: dict[str, str],
    token: str,
    organisation: str,
    backing: Backing,
    queue: FakeQueue,
) -> None:
    function, method, route, body, params = WRITE_PATHS[path]
    faulty.failing.update({"transact_write_items": code, "put_item": code, "update_item": code})
    before = count_partition(backing, organisation)
    jobs_before = len(queue.jobs)
    config_before = config_cases.get_config(_services(), _caller(organisation), seeded["config"])

    response = call(function, method, route, token, body(seeded), **params(seeded))

    assert response["statusCode"] == status
    assert json.loads(response["body"])["error"] == error
    if status == 429:
        assert response["headers"]["Retry-After"] == "1"
    faulty.failing.clear()
    assert count_partition(backing, organisation) == before
    assert len(queue.jobs) == jobs_before
    assert config_cases.get_config(_services(), _caller(organisation), seeded["config"]) == config_before


def test_read_fault_answers_503_without_a_stack_trace(faulty: FaultyClient, seeded: dict[str, str], token: str) -> None:
    faulty.failing["get_item"] = "InternalServerError"

    response = call("get_webhook_config", "GET", "/configs/webhook/x", token, id=seeded["config"])

    assert response["statusCode"] == 503  # the key lookup is the first read, and it fails
    assert json.loads(response["body"]) == {
        "error": "unavailable",
        "message": "A service dependency is unavailable; try again.",
    }


def _services() -> service_context.Services:
    return wiring.services()


def _caller(organisation: str) -> Any:
    from webhook_service.domain.tenants import Principal

    return Principal(key_id="check", organisation=organisation, state=KeyState.ACTIVE)


# -- the consumer ---------------------------------------------------------------------------


class CrashingSender(FakeSender):
    """Sends, then crashes the job before its outcome is written (as a killed process would),
    for URLs containing `crash_on`."""

    def __init__(self, crash_on: str) -> None:
        super().__init__()
        self.crash_on: str | None = crash_on

    def post(self, url: str, body: bytes, headers: Any) -> Any:
        result = super().post(url, body, headers)
        if self.crash_on and self.crash_on in url:
            raise RuntimeError("the process died mid-batch")
        return result


def test_consumer_crash_mid_batch_retries_the_job_and_the_task_ends(
    services: FakeServices, store: Store, clock: FakeClock, organisation: str
) -> None:
    from webhook_service.domain.tenants import Principal

    caller = Principal(key_id="k", organisation=organisation, state=KeyState.ACTIVE)
    crashing = config_cases.create_config(services, caller, {"url": URL + "crash/"})
    steady = config_cases.create_config(services, caller, {"url": URL + "steady/"})
    jobs = [_job(services, caller, c["id"]) for c in (crashing, steady)]
    sender = CrashingSender(crash_on="/crash/")
    use_deliverer(Deliverer(store=store, sender=sender, queue=FakeQueue(), clock=clock))
    try:
        first = handle_batch(sqs_event(*jobs), None)
        midway = task_cases.list_tasks(services, caller, {"target": crashing["id"]})["data"][0]
        sender.crash_on = None
        again = handle_batch(sqs_event(jobs[0]), None)  # SQS gives the failed message back
    finally:
        use_deliverer(None)

    assert first == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert midway["state"] == "processing"
    assert again == {"batchItemFailures": []}
    assert task_cases.list_tasks(services, caller, {"target": crashing["id"]})["data"][0]["state"] == "succeeded"
    assert task_cases.list_tasks(services, caller, {"target": steady["id"]})["data"][0]["state"] == "succeeded"
    resent = [headers["webhook-id"] for url, _, headers in sender.sent if "/crash/" in url]
    assert len(resent) == 2
    assert len(set(resent)) == 1  # the retry sent the same event again: receivers can drop it


def _job(services: FakeServices, caller: Any, config_id: str) -> str:
    task = task_cases.list_tasks(services, caller, {"target": config_id})["data"][0]
    return json.dumps({"job": "test", "task": task["id"], "organisation": caller.organisation, "config": config_id})
