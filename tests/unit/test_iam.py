"""Least privilege: each function's policy in infra/template.yaml is exactly what its code calls.

Every function runs in-process on moto, through its real handler and real storage and queue
clients, in a scenario that reaches each AWS call it can make. The calls are recorded
(devstack.iam) and must equal the function's grants both ways: a grant never called is too
wide, a call never granted would be refused by AWS. The whole-run check of tests/conftest.py
covers every other invocation (the local stack's, in the integration tests), so a new call
without a grant fails the run there too, naming the function and the action.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack import iam
from devstack.template import functions, load_template
from tests import iamcheck
from tests.unit.support import Backing, FakeClock, FakeQueue, FakeSender, SerialClient, http_event, sqs_event
from webhook_service import admin, events, service
from webhook_service.auth import Authenticator
from webhook_service.deliver import Deliverer, set_deliverer
from webhook_service.queue import JobQueue
from webhook_service.service import Services, set_services
from webhook_service.settings import reset_settings
from webhook_service.storage import Principal, Store

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
FUNCTIONS = {f.logical_id: f for f in functions(TEMPLATE)}
GRANTS = iam.template_grants(TEMPLATE)
RUNNER = iam.RecordingFunctions()
URL = "https://receiver.example/hooks/"
LONG_AGO = dt.datetime(2019, 1, 1, 12, 0, tzinfo=dt.UTC)  # before every other test's items (the sweep's)


@dataclass
class World:
    """One organisation with a key, on the template's table and a queue of its own."""

    services: Services
    caller: Principal
    token: str
    recorder: iam.Recorder
    backing: Backing
    queue_url: str

    def call(self, logical_id: str, event: dict[str, Any]) -> Any:
        return RUNNER.invoke(FUNCTIONS[logical_id], event)

    def api(
        self,
        logical_id: str,
        method: str,
        path: str,
        route: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        path_id: str | None = None,
    ) -> int:
        event = http_event(
            method,
            path,
            route=route,
            token=self.token,
            body=None if body is None else json.dumps(body),
            query=query or None,
            path_params={"id": path_id} if path_id else None,
        )
        status: int = self.call(logical_id, event)["statusCode"]
        return status

    def config(self) -> str:
        """A config made outside any function (not recorded)."""
        return str(service.create_config(self.services, self.caller, {"url": URL})["id"])

    def task_of(self, config_id: str) -> str:
        return str(service.list_tasks(self.services, self.caller, {"target": config_id})["data"][0]["id"])

    def called(self, logical_id: str) -> set[iam.Grant]:
        return {(action, resource) for function, action, resource in self.recorder.calls if function == logical_id}


@pytest.fixture
def world(backing: Backing, organisation: str) -> Iterator[World]:
    queue_url = backing.sqs.create_queue(QueueName=f"iam-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    names = {backing.table_name: "Table", queue_url: "DeliveryQueue"}
    iamcheck.RECORDER.names.update(names)
    recorder = iam.Recorder(names)
    stop = iam.install(recorder)
    store = Store(backing.table_name, SerialClient(backing.dynamodb))  # type: ignore[arg-type]
    services = Services(store=store, queue=JobQueue(queue_url, backing.sqs), authenticator=Authenticator(store))
    key, token = admin.create_key(store, organisation)
    set_services(services)
    try:
        yield World(services, Principal(key["id"], organisation, "active"), token, recorder, backing, queue_url)
    finally:
        set_services(None)
        set_deliverer(None)
        stop()
        backing.sqs.delete_queue(QueueUrl=queue_url)


# -- one scenario per function: every AWS call its code can make ---------------------------


def not_found(w: World) -> None:
    assert w.api("NotFoundFunction", "GET", "/nothing/here", "$default") == 404


def create_config(w: World) -> None:
    assert (
        w.api("CreateWebhookConfigFunction", "POST", "/configs/webhook", "POST /configs/webhook", {"url": URL}) == 201
    )


def get_config(w: World) -> None:
    config_id = w.config()
    path = f"/configs/webhook/{config_id}"
    assert w.api("GetWebhookConfigFunction", "GET", path, "GET /configs/webhook/{id}", path_id=config_id) == 200


def list_configs(w: World) -> None:
    for query in ({}, {"state": "valid"}):
        assert (
            w.api("ListWebhookConfigsFunction", "GET", "/configs/webhook", "GET /configs/webhook", query=query) == 200
        )


def update_config(w: World) -> None:
    config_id = w.config()
    path, route = f"/configs/webhook/{config_id}", "POST /configs/webhook/{id}"
    assert w.api("UpdateWebhookConfigFunction", "POST", path, route, {"url": URL + "v2"}, path_id=config_id) == 200


def queue_test(w: World) -> None:
    config_id = w.config()
    path, route = f"/configs/webhook/{config_id}/test", "POST /configs/webhook/{id}/test"
    assert w.api("TestWebhookConfigFunction", "POST", path, route, path_id=config_id) == 201


def delete_config(w: World) -> None:
    config_id = w.config()
    path, route = f"/configs/webhook/{config_id}", "DELETE /configs/webhook/{id}"
    assert w.api("DeleteWebhookConfigFunction", "DELETE", path, route, path_id=config_id) == 200


def get_task(w: World) -> None:
    task_id = w.task_of(w.config())
    assert w.api("GetTaskFunction", "GET", f"/tasks/{task_id}", "GET /tasks/{id}", path_id=task_id) == 200


def list_tasks(w: World) -> None:
    for query in ({}, {"state": "pending"}, {"target": w.config()}):
        assert w.api("ListTasksFunction", "GET", "/tasks", "GET /tasks", query=query) == 200


def get_key(w: World) -> None:
    assert w.api("GetKeyFunction", "GET", "/key", "GET /key") == 200


def update_key(w: World) -> None:
    key_id, body = w.caller.key_id, {"webhook_config": w.config()}
    assert w.api("UpdateKeyFunction", "POST", f"/keys/{key_id}", "POST /keys/{id}", body, path_id=key_id) == 200


def get_organisation(w: World) -> None:
    assert w.api("GetOrganisationFunction", "GET", "/organisation", "GET /organisation") == 200


def update_organisation(w: World) -> None:
    body = {"webhook_config_default": w.config()}
    assert w.api("UpdateOrganisationFunction", "POST", "/organisation", "POST /organisation", body) == 200


def published(w: World) -> str:
    event = events.publish(
        w.caller.organisation, "session", "completed", {"id": "s"}, store=w.services.store, queue=FakeQueue()
    )  # type: ignore[arg-type]
    return event.id


def get_event(w: World) -> None:
    event_id = published(w)
    assert w.api("GetEventFunction", "GET", f"/events/{event_id}", "GET /events/{id}", path_id=event_id) == 200


def list_events(w: World) -> None:
    published(w)
    for query in ({}, {"state": "pending"}, {"type": "session"}):
        assert w.api("ListEventsFunction", "GET", "/events", "GET /events", query=query) == 200


def deliver(w: World) -> None:
    """A test that succeeds (the config becomes valid), then an event to it whose attempt
    fails and is queued again."""
    sender = FakeSender(status=200)
    set_deliverer(Deliverer(store=w.services.store, sender=sender, queue=w.services.queue))  # type: ignore[arg-type]
    jobs = FakeQueue()
    setup = Services(store=w.services.store, queue=jobs, authenticator=w.services.authenticator)  # type: ignore[arg-type]
    config_id = service.create_config(setup, w.caller, {"url": URL})["id"]
    w.call("DeliverFunction", sqs_event(json.dumps(jobs.jobs.pop())))
    assert service.get_config(w.services, w.caller, config_id)["state"] == "valid"

    service.update_organisation(w.services, w.caller, {"webhook_config_default": config_id})
    event = events.publish(
        w.caller.organisation, "session", "completed", {"id": "s"}, store=w.services.store, queue=jobs
    )  # type: ignore[arg-type]
    sender.status = 503
    w.call("DeliverFunction", sqs_event(json.dumps(jobs.jobs.pop())))
    assert service.get_event(w.services, w.caller, event.id)["retries"] == 0
    assert int(w.backing.sqs.get_queue_attributes(QueueUrl=w.queue_url, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessagesDelayed"
    ]) >= 1  # fmt: skip


def sweep(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test whose job was lost, long ago: queued again by one run, ended by the next."""
    monkeypatch.setenv("SWEEP_AFTER_MINUTES", "60")
    reset_settings()
    clock = FakeClock(LONG_AGO)
    w.services.clock = clock
    lost = Services(store=w.services.store, queue=FakeQueue(), authenticator=w.services.authenticator, clock=clock)  # type: ignore[arg-type]
    task_id = w.task_of(service.create_config(lost, w.caller, {"url": URL})["id"])
    clock.now = LONG_AGO + dt.timedelta(hours=3)
    assert w.call("SweepFunction", {"source": "aws.events"}).get("tasks_requeued", 0) >= 1
    clock.now = LONG_AGO + dt.timedelta(hours=5)
    assert w.call("SweepFunction", {"source": "aws.events"}).get("tasks_failed", 0) >= 1
    assert service.get_task(w.services, w.caller, task_id)["error"] == "queue-unavailable"
    reset_settings()


def console(w: World) -> None:
    """Static files: the page and one of its assets, with no AWS call at all."""
    page = w.call("ConsoleFunction", http_event("GET", "/console"))
    route, proxy = "GET /console/{proxy+}", {"proxy": "app.js"}
    asset = w.call("ConsoleFunction", http_event("GET", "/console/app.js", route=route, path_params=proxy))
    assert page["statusCode"] == asset["statusCode"] == 200


SCENARIOS: dict[str, Callable[..., None]] = {
    "NotFoundFunction": not_found,
    "CreateWebhookConfigFunction": create_config,
    "GetWebhookConfigFunction": get_config,
    "ListWebhookConfigsFunction": list_configs,
    "UpdateWebhookConfigFunction": update_config,
    "TestWebhookConfigFunction": queue_test,
    "DeleteWebhookConfigFunction": delete_config,
    "GetTaskFunction": get_task,
    "ListTasksFunction": list_tasks,
    "GetKeyFunction": get_key,
    "UpdateKeyFunction": update_key,
    "GetOrganisationFunction": get_organisation,
    "UpdateOrganisationFunction": update_organisation,
    "GetEventFunction": get_event,
    "ListEventsFunction": list_events,
    "DeliverFunction": deliver,
    "SweepFunction": sweep,
    "ConsoleFunction": console,
}


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_function_policy_grants_exactly_what_its_code_calls(
    logical_id: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = SCENARIOS.get(logical_id)
    if scenario is None:
        pytest.fail(f"{logical_id} has no scenario here: add one that reaches every AWS call it makes")
    if logical_id == "SweepFunction":
        scenario(world, monkeypatch)
    else:
        scenario(world)

    called = world.called(logical_id)
    granted = GRANTS[logical_id]
    assert not called - granted, f"{logical_id} called without a grant: {sorted(called - granted)}"
    assert not granted - called, f"{logical_id} is granted what it never called: {sorted(granted - called)}"


def test_the_deliver_function_cannot_delete_scan_or_write_in_batches() -> None:
    actions = {action for action, _ in GRANTS["DeliverFunction"]}

    assert not actions & {"dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:BatchWriteItem"}


def test_read_only_functions_only_read_and_never_scan() -> None:
    reads = {"dynamodb:GetItem", "dynamodb:Query"}
    for logical_id in (
        "GetWebhookConfigFunction",
        "ListWebhookConfigsFunction",
        "GetTaskFunction",
        "ListTasksFunction",
    ):
        assert {action for action, _ in GRANTS[logical_id]} <= reads, logical_id


def test_only_functions_that_queue_jobs_may_send_to_the_queue() -> None:
    senders = {f for f, grants in GRANTS.items() if ("sqs:SendMessage", "DeliveryQueue") in grants}

    assert "DeleteWebhookConfigFunction" not in senders
    assert senders == {
        "CreateWebhookConfigFunction",
        "UpdateWebhookConfigFunction",
        "TestWebhookConfigFunction",
        "DeliverFunction",
        "SweepFunction",
    }


def test_queries_are_granted_on_the_indexes_they_read_never_the_table() -> None:
    for logical_id, grants in GRANTS.items():
        for action, resource in grants:
            if action == "dynamodb:Query":
                assert resource.startswith("Table/index/"), (logical_id, resource)


# -- the mapping and the check themselves ------------------------------------------------


def test_a_transaction_needs_the_action_of_each_kind_of_item_it_holds() -> None:
    params = {
        "TransactItems": [
            {"ConditionCheck": {"TableName": "t"}},
            {"Put": {"TableName": "t"}},
            {"Update": {"TableName": "t"}},
        ]
    }

    assert iam.required("dynamodb", "TransactWriteItems", params, {"t": "Table"}) == {
        ("dynamodb:ConditionCheckItem", "Table"),
        ("dynamodb:PutItem", "Table"),
        ("dynamodb:UpdateItem", "Table"),
    }


def test_a_query_of_an_index_needs_the_index_and_a_send_needs_its_queue() -> None:
    names = {"t": "Table", "https://q/1": "DeliveryQueue"}

    assert iam.required("dynamodb", "Query", {"TableName": "t", "IndexName": "ByType"}, names) == {
        ("dynamodb:Query", "Table/index/ByType")
    }
    assert iam.required("sqs", "SendMessage", {"QueueUrl": "https://q/1"}, names) == {
        ("sqs:SendMessage", "DeliveryQueue")
    }


def test_an_operation_missing_from_the_mapping_is_reported_by_name() -> None:
    (grant,) = iam.required("dynamodb", "ExecuteStatement", {"Statement": "x"}, {})
    calls = [("GetKeyFunction", *grant)]

    (problem,) = iam.ungranted(TEMPLATE, calls)

    assert "unmapped:dynamodb:ExecuteStatement" in problem
    assert "devstack/iam.py" in problem


def test_a_call_without_a_grant_names_the_function_and_the_action() -> None:
    calls = [("GetKeyFunction", "dynamodb:GetItem", "Table"), ("GetKeyFunction", "dynamodb:DeleteItem", "Table")]

    assert iam.ungranted(TEMPLATE, calls) == [
        "GetKeyFunction called dynamodb:DeleteItem on Table, which its policy does not grant"
    ]


def test_policies_the_check_cannot_read_exactly_are_refused() -> None:
    templated = {"Properties": {"Policies": [{"DynamoDBCrudPolicy": {"TableName": {"Ref": "Table"}}}]}}
    wildcard = {
        "Properties": {"Policies": [{"Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]}]}
    }
    star_resource = {
        "Properties": {"Policies": [{"Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]}]}
    }

    for resource in (templated, wildcard, star_resource):
        with pytest.raises(iam.PolicyError):
            iam.grants_of(resource, "SomeFunction")


def test_calls_are_attributed_inside_an_invocation_and_its_thread_pools_only(backing: Backing) -> None:
    from concurrent.futures import ThreadPoolExecutor

    recorder = iam.Recorder({backing.table_name: "Table"})
    stop = iam.install(recorder)
    try:
        backing.dynamodb.describe_table(TableName=backing.table_name)  # outside: nobody's
        with iam.invoking("GetKeyFunction"), ThreadPoolExecutor(max_workers=2) as pool:
            pool.submit(
                backing.dynamodb.get_item, TableName=backing.table_name, Key={"PK": {"S": "x"}, "SK": {"S": "y"}}
            ).result()
    finally:
        stop()

    assert recorder.calls == {("GetKeyFunction", "dynamodb:GetItem", "Table")}


def test_a_run_whose_function_makes_an_ungranted_call_fails(tmp_path: Path) -> None:
    """The whole-run check, end to end: a test that makes a DeleteItem call inside the
    GetKeyFunction's invocation, run by pytest with this suite's conftest, fails the run."""
    (tmp_path / "test_rogue.py").write_text(
        textwrap.dedent(
            """
            import boto3
            from botocore.exceptions import ClientError
            from moto import mock_aws

            from devstack import iam
            from tests import iamcheck


            def test_rogue_call():
                iamcheck.RECORDER.names["rogue-table"] = "Table"
                with mock_aws():
                    client = boto3.client("dynamodb", region_name="us-east-1")
                    with iam.invoking("GetKeyFunction"):
                        try:
                            client.delete_item(TableName="rogue-table", Key={"PK": {"S": "x"}, "SK": {"S": "y"}})
                        except ClientError:
                            pass
            """
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'layers' / 'webhook_service'}{os.pathsep}{ROOT}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert "1 passed" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 1, done.stdout
    assert "GetKeyFunction called dynamodb:DeleteItem on Table, which its policy does not grant" in done.stdout
