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
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from devstack import iam
from devstack.aws import serial
from devstack.template import functions, load_template, routes
from tests import iamcheck
from tests.unit.support import Backing, FakeClock, FakeQueue, FakeSender, http_event, sqs_event
from webhook_service import admin, events
from webhook_service.auth import Authenticator
from webhook_service.domain.configs import FAST_LANE_OPEN_TESTS
from webhook_service.domain.events import EventState, new_event
from webhook_service.domain.recovery import STEP_LEAST
from webhook_service.domain.tenants import KeyState, Principal
from webhook_service.jobqueue import JobQueue
from webhook_service.jobs.deliverer import Deliverer
from webhook_service.jobs.dispatch import handle_job
from webhook_service.lanes import config_test_job, event_job, recover_job
from webhook_service.service import configs as config_cases
from webhook_service.service import events as event_cases
from webhook_service.service import recovery as recovery_cases
from webhook_service.service import tasks as task_cases
from webhook_service.service import tenants as tenant_cases
from webhook_service.service.context import Services
from webhook_service.settings import reset_settings
from webhook_service.storage.store import Store
from webhook_service.timefmt import format_datetime, utcnow
from webhook_service.wiring import ProcessServices, use_deliverer, use_services

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
    store: Store
    caller: Principal
    token: str
    recorder: iam.Recorder
    backing: Backing
    lanes: dict[str, str]  # logical id of each lane's queue -> its URL

    def call(self, logical_id: str, event: dict[str, Any]) -> Any:
        # Each function runs in processes of its own, whose routing cache no other function
        # fills: start every call with it empty, so a call makes the reads it would on AWS.
        self.store.table.routing.forget()  # the one store the scenarios' services and deliverer share
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
        return str(config_cases.create_config(self.services, self.caller, {"url": URL})["id"])

    def task_of(self, config_id: str) -> str:
        return str(task_cases.list_tasks(self.services, self.caller, {"target": config_id})["data"][0]["id"])

    def waiting(self, lane: str) -> int:
        """Messages in a lane's queue, delayed ones included."""
        attributes = self.backing.sqs.get_queue_attributes(QueueUrl=self.lanes[lane], AttributeNames=["All"])
        return sum(
            int(attributes["Attributes"][name])
            for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed")
        )

    def end_tests(self) -> None:
        """End every open test of the organisation (outside any function: not recorded), so
        that fair use lets a new one be created."""
        deliverer = Deliverer(store=self.services.store, sender=FakeSender(status=200), queue=self.services.queue)
        for task in task_cases.list_tasks(self.services, self.caller, {"state": "pending", "limit": "1000"})["data"]:
            handle_job(deliverer, json.dumps(config_test_job(task["id"], self.caller.organisation, task["target"])))

    def mark_slow(self, config_id: str) -> None:
        config = self.services.store.configs.get(self.caller.organisation, config_id)
        assert config is not None
        self.services.store.configs.mark_slow(config, int(time.time()) + 600)

    def called(self, logical_id: str) -> set[iam.Grant]:
        return {(action, resource) for function, action, resource in self.recorder.calls if function == logical_id}


@pytest.fixture
def world(backing: Backing, organisation: str) -> Iterator[World]:
    lanes = {
        name: backing.sqs.create_queue(QueueName=f"iam-{name}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        for name in ("DeliveryQueue", "TestQueue", "SlowQueue", "DeliveryDeadLetterQueue")
    }
    names = {backing.table_name: "Table", **{url: name for name, url in lanes.items()}}
    iamcheck.RECORDER.names.update(names)
    recorder = iam.Recorder(names)
    stop = iam.install(recorder)
    store = Store(backing.table_name, serial(backing.dynamodb))
    services = ProcessServices(
        store=store,
        queue=JobQueue(lanes["DeliveryQueue"], backing.sqs),
        authenticator=Authenticator(store.organisations),
        test_queue=JobQueue(lanes["TestQueue"], backing.sqs),
        slow_queue=JobQueue(lanes["SlowQueue"], backing.sqs),
    )
    key, token = admin.create_key(store.organisations, organisation)
    use_services(services)
    try:
        yield World(
            services, store, Principal(key["id"], organisation, KeyState.ACTIVE), token, recorder, backing, lanes
        )
    finally:
        use_services(None)
        use_deliverer(None)
        stop()
        for url in lanes.values():
            backing.sqs.delete_queue(QueueUrl=url)


# -- one scenario per function: every AWS call its code can make ---------------------------


def not_found(w: World) -> None:
    assert w.api("NotFoundFunction", "GET", "/nothing/here", "$default") == 404


def create_config(w: World) -> None:
    """Six configs: the first five tests take the tests lane, the sixth the slow lane."""
    for _ in range(FAST_LANE_OPEN_TESTS + 1):
        assert (
            w.api("CreateWebhookConfigFunction", "POST", "/configs/webhook", "POST /configs/webhook", {"url": URL})
            == 201
        )


def get_config(w: World) -> None:
    config_id = w.config()
    path = f"/configs/webhook/{config_id}"
    assert w.api("GetWebhookConfigFunction", "GET", path, "GET /configs/webhook/{id}", path_id=config_id) == 200


def list_configs(w: World) -> None:
    """Pages with more behind them read the config counts; a cursor is read with them."""
    first, _ = w.config(), w.config()
    for query in ({}, {"state": "valid"}, {"limit": "1"}, {"limit": "1", "after_id": first}):
        assert (
            w.api("ListWebhookConfigsFunction", "GET", "/configs/webhook", "GET /configs/webhook", query=query) == 200
        )


def update_config(w: World) -> None:
    """A url change re-tests in the tests lane; one of an endpoint marked slow, in the slow lane."""
    config_id = w.config()
    path, route = f"/configs/webhook/{config_id}", "POST /configs/webhook/{id}"
    assert w.api("UpdateWebhookConfigFunction", "POST", path, route, {"url": URL + "v2"}, path_id=config_id) == 200
    w.mark_slow(config_id)
    assert w.api("UpdateWebhookConfigFunction", "POST", path, route, {"url": URL + "v3"}, path_id=config_id) == 200


def queue_test(w: World) -> None:
    """A test while one is open answers it; a new one takes the tests lane, then (the
    endpoint marked slow) the slow lane."""
    config_id = w.config()
    path, route = f"/configs/webhook/{config_id}/test", "POST /configs/webhook/{id}/test"
    assert w.api("TestWebhookConfigFunction", "POST", path, route, path_id=config_id) == 201
    w.end_tests()
    assert w.api("TestWebhookConfigFunction", "POST", path, route, path_id=config_id) == 201
    w.end_tests()
    w.mark_slow(config_id)
    assert w.api("TestWebhookConfigFunction", "POST", path, route, path_id=config_id) == 201


def delete_config(w: World) -> None:
    config_id = w.config()
    path, route = f"/configs/webhook/{config_id}", "DELETE /configs/webhook/{id}"
    assert w.api("DeleteWebhookConfigFunction", "DELETE", path, route, path_id=config_id) == 200


def get_task(w: World) -> None:
    task_id = w.task_of(w.config())
    assert w.api("GetTaskFunction", "GET", f"/tasks/{task_id}", "GET /tasks/{id}", path_id=task_id) == 200


def list_tasks(w: World) -> None:
    config_id = w.config()
    for query in ({}, {"state": "pending"}, {"target": config_id}, {"after_id": w.task_of(config_id)}):
        assert w.api("ListTasksFunction", "GET", "/tasks", "GET /tasks", query=query) == 200


def get_key(w: World) -> None:
    assert w.api("GetKeyFunction", "GET", "/key", "GET /key") == 200


def update_key(w: World) -> None:
    key_id, body = w.caller.key_id, {"webhook_config": w.config()}
    assert w.api("UpdateKeyFunction", "POST", f"/keys/{key_id}", "POST /keys/{id}", body, path_id=key_id) == 200


def get_organisation(w: World) -> None:
    w.config()  # the organisation shows its first configs, fetched by key
    assert w.api("GetOrganisationFunction", "GET", "/organisation", "GET /organisation") == 200


def update_organisation(w: World) -> None:
    body = {"webhook_config_default": w.config()}
    assert w.api("UpdateOrganisationFunction", "POST", "/organisation", "POST /organisation", body) == 200


def published(w: World) -> str:
    event = events.publish(
        w.caller.organisation, "session", "completed", {"id": "s"}, store=w.services.store, queue=FakeQueue()
    )
    return event.id


def get_event(w: World) -> None:
    event_id = published(w)
    assert w.api("GetEventFunction", "GET", f"/events/{event_id}", "GET /events/{id}", path_id=event_id) == 200


def list_events(w: World) -> None:
    event_id = published(w)
    for query in ({}, {"state": "pending"}, {"type": "session"}, {"after_id": event_id}):
        assert w.api("ListEventsFunction", "GET", "/events", "GET /events", query=query) == 200


def delivered_event(w: World) -> str:
    """An event delivered to a valid config that is the organisation's default, with its
    attempt (made outside any function: not recorded)."""
    svc = w.services
    config_id = w.config()
    w.end_tests()
    tenant_cases.update_organisation(svc, w.caller, {"webhook_config_default": config_id})
    jobs = FakeQueue()
    event = events.publish(w.caller.organisation, "session", "completed", {"id": "s"}, store=svc.store, queue=jobs)
    deliverer = Deliverer(store=svc.store, sender=FakeSender(status=200), queue=jobs)
    handle_job(deliverer, json.dumps(jobs.jobs.pop()))
    assert event_cases.get_event(svc, w.caller, event.id)["state"] == "delivered"
    return event.id


def list_attempts(w: World) -> None:
    """A page, and one after a cursor (read by id, with the count of the whole list)."""
    event_id = delivered_event(w)
    (attempt,) = event_cases.list_attempts(w.services, w.caller, event_id, {})["data"]
    path, route = f"/events/{event_id}/attempts", "GET /events/{id}/attempts"
    for query in ({}, {"before_id": attempt["id"]}):
        assert w.api("ListEventAttemptsFunction", "GET", path, route, query=query, path_id=event_id) == 200


def resend_event(w: World) -> None:
    event_id = delivered_event(w)
    path, route = f"/events/{event_id}/resend", "POST /events/{id}/resend"
    assert w.api("ResendEventFunction", "POST", path, route, {}, path_id=event_id) == 200
    assert w.waiting("DeliveryQueue") >= 1


def rotate_secret(w: World) -> None:
    config_id = w.config()
    path, route = f"/configs/webhook/{config_id}/rotate_secret", "POST /configs/webhook/{id}/rotate_secret"
    body = {"overlap_seconds": 60}
    assert w.api("RotateWebhookSecretFunction", "POST", path, route, body, path_id=config_id) == 200


def valid_default_config(w: World) -> str:
    """A valid config, the organisation's default (made outside any function: not recorded)."""
    config_id = w.config()
    w.end_tests()
    tenant_cases.update_organisation(w.services, w.caller, {"webhook_config_default": config_id})
    return config_id


def recover_config(w: World) -> None:
    """Five recovers take the tests lane; the sixth, with the organisation's share of the
    tests lane open, the slow lane."""
    config_id = valid_default_config(w)
    path, route = f"/configs/webhook/{config_id}/recover", "POST /configs/webhook/{id}/recover"
    body = {"since": format_datetime(utcnow() - dt.timedelta(hours=1))}
    for _ in range(FAST_LANE_OPEN_TESTS + 1):
        assert w.api("RecoverWebhookConfigFunction", "POST", path, route, body, path_id=config_id) == 201
    assert w.waiting("TestQueue") >= 1
    assert w.waiting("SlowQueue") >= 1


def recover_steps(w: World, jobs: FakeQueue) -> None:
    """Two recover steps: the first resends a failed event (its window's index read, the
    events' items fetched) and queues the next; the second ends the task."""
    svc = w.services
    config_id = valid_default_config(w)
    for n in range(STEP_LEAST + 1):  # failed at their last attempt (written outside any function)
        published = events.publish(w.caller.organisation, "session", "ended", {"n": n}, store=svc.store, queue=jobs)
        svc.store.events.save(replace(published, state=EventState.FAILED, webhook_config=config_id))
    setup = Services(store=svc.store, queue=jobs, authenticator=svc.authenticator)
    config_cases.update_config(setup, w.caller, config_id, {"rate_limit": 1})  # steps of STEP_LEAST events
    since = format_datetime(utcnow() - dt.timedelta(hours=1))
    task = recovery_cases.recover_config(setup, w.caller, config_id, {"since": since})
    w.call("DeliverFunction", sqs_event(json.dumps(recover_job(task["id"], w.caller.organisation, config_id))))
    w.call("DeliverFunction", sqs_event(json.dumps(recover_job(task["id"], w.caller.organisation, config_id))))
    assert task_cases.get_task(svc, w.caller, task["id"])["state"] == "succeeded"


def deliver(w: World) -> None:
    """A test that succeeds (the config becomes valid); one whose job does not name its
    config (read apart); an event to it whose attempt fails and is queued again; one whose
    job does not name its key; one that arrives in the events lane for an endpoint marked
    slow (moved to the slow lane unsent); and one handed back to its lane for want of time."""
    svc = w.services
    sender = FakeSender(status=200)
    use_deliverer(
        Deliverer(store=svc.store, sender=sender, queue=svc.queue, test_queue=svc.test_queue, slow_queue=svc.slow_queue)
    )
    jobs = FakeQueue()
    setup = Services(store=svc.store, queue=jobs, authenticator=svc.authenticator)
    config_id = config_cases.create_config(setup, w.caller, {"url": URL})["id"]
    w.call("DeliverFunction", sqs_event(json.dumps(jobs.jobs.pop())))
    assert config_cases.get_config(svc, w.caller, config_id)["state"] == "valid"
    config_cases.queue_config_test(setup, w.caller, config_id, {})
    unnamed = {name: value for name, value in jobs.jobs.pop().items() if name != "config"}  # a job before 0.1.0
    w.call("DeliverFunction", sqs_event(json.dumps(unnamed)))

    tenant_cases.update_organisation(svc, w.caller, {"webhook_config_default": config_id})
    event = events.publish(w.caller.organisation, "session", "completed", {"id": "s"}, store=svc.store, queue=jobs)
    sender.status = 503
    w.call("DeliverFunction", sqs_event(json.dumps(jobs.jobs.pop())))
    assert event_cases.get_event(svc, w.caller, event.id)["retries"] == 0
    assert w.waiting("DeliveryQueue") >= 1

    # A job queued without its event's key (by a version before routing was read with the
    # event): the event is read on its own.
    events.publish(w.caller.organisation, "session", "completed", {"id": "u"}, store=svc.store, queue=jobs)
    keyless = {name: value for name, value in jobs.jobs.pop().items() if name != "key"}
    w.call("DeliverFunction", sqs_event(json.dumps(keyless)))

    w.mark_slow(config_id)
    events.publish(w.caller.organisation, "session", "completed", {"id": "t"}, store=svc.store, queue=jobs)
    w.call("DeliverFunction", sqs_event(json.dumps(jobs.jobs.pop())))
    assert w.waiting("SlowQueue") >= 1

    test_job = json.dumps(config_test_job(str(uuid.uuid4()), w.caller.organisation, config_id))
    with iam.invoking("DeliverFunction"):
        result = RUNNER.handler(FUNCTIONS["DeliverFunction"])(sqs_event(test_job), ShortContext())
    assert result == {"batchItemFailures": []}
    assert w.waiting("TestQueue") >= 1
    recover_steps(w, jobs)


class ShortContext:
    """A Lambda context with too little time left to start any job."""

    aws_request_id = "short"

    def get_remaining_time_in_millis(self) -> int:
        return 1500


def sweep(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test whose job was lost, long ago, and an event whose job went to the dead-letter
    queue: queued again by one run (the test in the tests lane, the event in the events
    lane), ended by the next."""
    dead_letters = w.lanes["DeliveryDeadLetterQueue"]
    monkeypatch.setenv("SWEEP_AFTER_MINUTES", "60")
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", dead_letters)
    reset_settings()
    clock = FakeClock(LONG_AGO)
    w.services.clock = clock
    lost = Services(store=w.services.store, queue=FakeQueue(), authenticator=w.services.authenticator, clock=clock)
    task_id = w.task_of(config_cases.create_config(lost, w.caller, {"url": URL})["id"])
    event = new_event(w.caller.organisation, "session", "completed", {}, None, LONG_AGO)
    w.services.store.events.create(event)
    job = event_job(event.id, w.caller.organisation, 1)
    w.backing.sqs.send_message(QueueUrl=dead_letters, MessageBody=json.dumps(job))
    clock.now = LONG_AGO + dt.timedelta(hours=3)
    swept = w.call("SweepFunction", {"source": "aws.events"})
    assert swept.get("tasks_requeued", 0) >= 1
    assert swept.get("events_requeued", 0) >= 1
    w.backing.sqs.send_message(QueueUrl=dead_letters, MessageBody=json.dumps({**job, "sweeps": 1}))
    clock.now = LONG_AGO + dt.timedelta(hours=5)
    swept = w.call("SweepFunction", {"source": "aws.events"})
    assert (swept.get("tasks_failed", 0), swept.get("events_failed", 0)) >= (1, 1)
    assert task_cases.get_task(w.services, w.caller, task_id)["error"] == "queue-unavailable"
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
    "ListEventAttemptsFunction": list_attempts,
    "ResendEventFunction": resend_event,
    "RotateWebhookSecretFunction": rotate_secret,
    "RecoverWebhookConfigFunction": recover_config,
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
    reads = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
    for logical_id in (
        "GetWebhookConfigFunction",
        "ListWebhookConfigsFunction",
        "GetTaskFunction",
        "ListTasksFunction",
        "ListEventAttemptsFunction",
    ):
        # Their one write is to the caller's organisation's rate (its own partition).
        assert {action for action, _ in GRANTS[logical_id] - {RATE_GRANT}} <= reads, logical_id


RATE_GRANT = ("dynamodb:UpdateItem", "Table[LIMIT#*]")


def test_every_api_function_may_write_the_organisations_rates_and_no_other_function_may() -> None:
    api = {route.function.logical_id for route in routes(TEMPLATE)} - {"ConsoleFunction"}

    assert {f for f, grants in GRANTS.items() if RATE_GRANT in grants} == api


def test_an_items_partition_granted_apart_needs_that_grant() -> None:
    names = {"t": "Table"}
    rate = {"TableName": "t", "Key": {"PK": {"S": "LIMIT#o"}, "SK": {"S": "RATE#api"}}}
    organisation = {"TableName": "t", "Key": {"PK": {"S": "ORG#o"}, "SK": {"S": "ORG"}}}

    assert iam.required("dynamodb", "UpdateItem", rate, names) == {RATE_GRANT}
    assert iam.required("dynamodb", "UpdateItem", organisation, names) == {("dynamodb:UpdateItem", "Table")}


def test_functions_with_queue_event_sources_have_roles_of_their_own_without_a_managed_queue_policy() -> None:
    queues = iam.event_source_queues(TEMPLATE)
    assert queues == {"DeliverFunction": {"DeliveryQueue", "TestQueue", "SlowQueue"}}

    for logical_id in queues:
        # With no Role, SAM makes one and gives it AWSLambdaSQSQueueExecutionRole: receive and
        # delete on every queue of the account.
        properties = TEMPLATE["Resources"][logical_id]["Properties"]
        assert "Role" in properties, f"{logical_id} needs a role of its own"
        (role_id, _) = properties["Role"]["Fn::GetAtt"]
        managed = TEMPLATE["Resources"][role_id]["Properties"].get("ManagedPolicyArns", [])
        assert not [arn for arn in managed if "SQS" in json.dumps(arn)]


def test_the_deliver_functions_poller_may_receive_and_delete_on_its_own_lanes_only() -> None:
    pollers = iam.poller_grants(TEMPLATE)

    assert pollers["DeliverFunction"] == {
        (action, queue) for action in iam.POLLER_ACTIONS for queue in ("DeliveryQueue", "TestQueue", "SlowQueue")
    }
    assert not any(grants for function, grants in pollers.items() if function != "DeliverFunction")


def test_a_role_the_check_cannot_read_exactly_is_refused() -> None:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": {"Fn::GetAtt": "Q.Arn"}}
    policies = [{"PolicyDocument": {"Statement": [statement]}}]
    role: dict[str, Any] = {"Type": "AWS::IAM::Role", "Properties": {"Policies": policies}}
    polls_q = {"Q": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": "Q.Arn"}}}}
    function = {"Properties": {"Role": {"Fn::GetAtt": "R.Arn"}, "Events": polls_q}}
    managed = {
        "Type": "AWS::IAM::Role",
        "Properties": {"Policies": policies, "ManagedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"]},
    }
    both = {
        "Properties": {"Role": {"Fn::GetAtt": "R.Arn"}, "Policies": [{"Statement": [statement]}], "Events": polls_q}
    }
    condition = {**statement, "Condition": {"StringEquals": {"aws:SourceVpc": "v"}}}
    conditioned = {
        "Type": "AWS::IAM::Role",
        "Properties": {"Policies": [{"PolicyDocument": {"Statement": [condition]}}]},
    }

    assert iam.poller_grants({"Resources": {"F": {"Type": "AWS::Serverless::Function", **function}, "R": role}}) == {
        "F": {("sqs:ReceiveMessage", "Q")}
    }
    for template_role, resource in ((managed, function), (role, both), (conditioned, function)):
        with pytest.raises(iam.PolicyError):
            iam.grants_of(resource, "F", {"Resources": {"R": template_role}})


def test_only_functions_that_queue_jobs_may_send_and_each_only_to_its_lanes() -> None:
    lanes = ("DeliveryQueue", "TestQueue", "SlowQueue")
    sends = {
        f: {queue for queue in lanes if ("sqs:SendMessage", queue) in grants}
        for f, grants in GRANTS.items()
        if any(("sqs:SendMessage", queue) in grants for queue in lanes)
    }

    assert sends == {
        # tests go to the tests lane, or the slow lane for an endpoint marked slow
        "CreateWebhookConfigFunction": {"TestQueue", "SlowQueue"},
        "UpdateWebhookConfigFunction": {"TestQueue", "SlowQueue"},
        "TestWebhookConfigFunction": {"TestQueue", "SlowQueue"},
        # a recover task's first step: the tests lane, or the slow lane past the organisation's share
        "RecoverWebhookConfigFunction": {"TestQueue", "SlowQueue"},
        # retries, moves to the slow lane, jobs handed back to their lane
        "DeliverFunction": {"DeliveryQueue", "TestQueue", "SlowQueue"},
        # lost tests to the tests lane, lost events to the events lane
        "SweepFunction": {"DeliveryQueue", "TestQueue"},
        # a resent event's first attempt, in the events lane
        "ResendEventFunction": {"DeliveryQueue"},
    }


# The one function whose Query reads the table itself: an event's attempts, in the event's own
# partition (its key built from the caller's organisation, as every key is).
TABLE_QUERIES = {"ListEventAttemptsFunction"}


def test_queries_are_granted_on_the_indexes_they_read_never_the_table() -> None:
    for logical_id, grants in GRANTS.items():
        for action, resource in grants:
            if action == "dynamodb:Query" and logical_id not in TABLE_QUERIES:
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
