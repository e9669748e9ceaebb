"""The local stack as the integration tests see it: its coordinates (`LocalStack`) and a
caller with its own key that speaks real HTTP to it (`Client`), every answer checked against
docs/openapi.yaml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import boto3
import requests

from devstack.gateway import match
from devstack.template import load_template, routes
from tests.openapi import check_response
from webhook_service import admin, events
from webhook_service.jobqueue import JobQueue
from webhook_service.storage.store import Store
from webhook_service.views import event_resource

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90
DELIVERY_TIMEOUT = 2.0  # the stack's total delivery timeout: short, so timeouts are quick to test


@dataclass(frozen=True)
class LocalStack:
    url: str
    token: str
    organisation: str
    key: str
    aws_endpoint: str
    table: str
    queue_url: str
    test_queue_url: str
    slow_queue_url: str
    dead_letter_queue_url: str

    def aws_env(self) -> dict[str, str]:
        """The environment that points boto3 and the operator CLI at this stack's AWS."""
        return {
            **os.environ,
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "TABLE_NAME": self.table,
            "QUEUE_URL": self.queue_url,
            "TEST_QUEUE_URL": self.test_queue_url,
            "SLOW_QUEUE_URL": self.slow_queue_url,
        }

    def aws_client(self, service: Literal["dynamodb", "sqs"]) -> Any:
        """A boto3 client of this stack's local AWS."""
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def store(self) -> Store:
        """The service's storage on this stack's table, in this process (one client per stack)."""
        where = (self.aws_endpoint, self.table)
        if where not in _stores:
            _stores[where] = Store(self.table, self.aws_client("dynamodb"))
        return _stores[where]

    def publish(self, organisation: str, data: dict[str, Any] | None = None, key: str | None = None) -> dict[str, Any]:
        """A `session completed` event published by what the operator command line's
        publish-event runs (webhook_service.events.publish), in this process; its resource.
        The command line itself publishes in test_events_delivery.py and test_tenancy.py."""
        if self.queue_url not in _queues:
            _queues[self.queue_url] = JobQueue(self.queue_url, self.aws_client("sqs"))
        queue, store = _queues[self.queue_url], self.store()
        event = events.publish(organisation, "session", "completed", data or {}, key=key, store=store, queue=queue)
        return event_resource(event)

    def wait_until_jobs_done(self, timeout: float = 30.0) -> None:
        """Wait until no job is waiting or running in any lane: a job that was queued has
        then been received, run to its end and deleted (a job is in flight from its receive
        until its invocation ends), so whatever it would deliver has been delivered. Jobs
        queued with a delay (retries, hops) are not waited for."""
        sqs = self.aws_client("sqs")
        counts = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        deadline = time.monotonic() + timeout
        while True:
            left = {}
            for url in (self.queue_url, self.test_queue_url, self.slow_queue_url):
                attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=counts)["Attributes"]
                left[url] = sum(int(value) for value in attributes.values())
            if not any(left.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still waiting or running after {timeout} s: {left}")
            time.sleep(0.1)

    def operator(self, *args: str) -> dict[str, Any]:
        """Run the operator command line against this stack and parse what it prints."""
        done = subprocess.run(
            [sys.executable, "-m", "webhook_service", *args],
            env=self.aws_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            cwd=ROOT,
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def official_client(self, token: str, script: str, *args: str) -> dict[str, Any]:
        """Run a script of tests/integration/scripts that uses the unmodified `ricloud`
        client, configured only by RICLOUD_URL and RICLOUD_TOKEN; parse what it prints."""
        done = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "integration" / "scripts" / script), *args],
            env={"RICLOUD_URL": self.url + "/", "RICLOUD_TOKEN": token, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result


ROUTES = routes(load_template())
# By (AWS endpoint, table) and by queue URL: a boto3 client takes tens of milliseconds to make.
_stores: dict[tuple[str, str], Store] = {}
_queues: dict[str, JobQueue] = {}


def new_caller(stack: LocalStack, name: str) -> Client:
    """A new organisation with its own key, made by what the operator command line runs
    (webhook_service.admin) in this process, on the stack's table: two command-line
    processes cost half a second a test. The command line itself is run by the tests that
    deactivate a key (test_configs_api.py) and that route by key (test_tenancy.py)."""
    store = stack.store()
    organisation = admin.create_organisation(store.organisations, name)
    key, token = admin.create_key(store.organisations, str(organisation["id"]))
    return Client(stack.url, token, str(organisation["id"]), str(key["id"]))


# The operator's set-limits options that take an organisation's rates out of a test's way
# (docs/design.md §18), for tests of what lies behind them.
UNLIMITED = (
    *("--rate", "100000", "--burst", "100000"),
    *("--tests-per-second", "100000", "--tests-burst", "100000"),
    *("--resends-per-second", "100000", "--resends-burst", "100000"),
)


def assert_documented(method: str, path: str, response: requests.Response) -> None:
    """Every answer the tests get matches the OpenAPI document (errors: the Error schema)."""
    found = match(ROUTES, method, urlsplit(path).path)
    route = found[0].path if found else "$default"
    assert response.headers.get("Content-Type") == "application/json", response.headers
    if route == "$default" and response.status_code < 400:
        raise AssertionError(f"{method} {path} answered {response.status_code} outside the document")
    problems = check_response(method, route, response.status_code, response.json())
    assert not problems, f"{method} {path} -> {response.status_code} breaks docs/openapi.yaml: {problems}"


@dataclass(frozen=True)
class Client:
    """A caller with its own key: real HTTP with `Authorization: Token ...`."""

    base: str
    token: str
    organisation: str
    key: str

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request; its answer is checked against docs/openapi.yaml before it is returned."""
        headers = {"Authorization": f"Token {self.token}", **kwargs.pop("headers", {})}
        response = requests.request(method, self.base + path, headers=headers, timeout=30, **kwargs)
        assert_documented(method, path, response)
        return response

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def create_config(self, url: str = "https://receiver.example/hooks") -> dict[str, Any]:
        response = self.post("/configs/webhook", json={"url": url})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def tasks_of(self, config_id: str) -> list[dict[str, Any]]:
        response = self.get("/tasks", params={"target": config_id, "limit": 100})
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    def wait_task(self, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """Poll a task until it has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task: dict[str, Any] = self.get(f"/tasks/{task_id}").json()
            if task["state"] in ("succeeded", "failed"):
                return task
            time.sleep(0.1)
        raise TimeoutError(f"task {task_id} still {task['state']} after {timeout} s")

    def wait_event(self, event_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """Poll an event until it has been delivered or has failed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event: dict[str, Any] = self.get(f"/events/{event_id}").json()
            if event["state"] in ("delivered", "failed"):
                return event
            time.sleep(0.1)
        raise TimeoutError(f"event {event_id} still {event['state']} after {timeout} s")

    def create_and_wait(self, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Create a config, wait for its first test, and return (config now, task)."""
        config = self.create_config(url)
        (task,) = self.tasks_of(config["id"])
        ended = self.wait_task(task["id"])
        return self.get(f"/configs/webhook/{config['id']}").json(), ended
