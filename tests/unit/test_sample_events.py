"""Every function of the template, invoked in-process with its sample event from events/
(what `sam local invoke <Function> -e events/<function>.json` sends it), on a table of the
template that holds the sample data (devstack.samples): each answers what it should."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import aws, samples, template
from tests.unit.support import Backing, FakeQueue, FakeSender, load_function
from webhook_service.auth import Authenticator
from webhook_service.jobs.deliverer import Deliverer
from webhook_service.signing import verify_ricloud, verify_standard
from webhook_service.storage.store import Store
from webhook_service.timefmt import format_datetime, utcnow
from webhook_service.wiring import ProcessServices, use_deliverer, use_services

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = template.load_template()
FUNCTIONS = {f.code_dir.name: f for f in template.functions(TEMPLATE)}


def sample(folder: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / f"{folder}.json").read_text())
    return event


@pytest.fixture(scope="module")
def sample_store(backing: Backing) -> Store:
    """A table of the template of its own: the sweep's sample looks at the whole table."""
    stack = aws.deploy(TEMPLATE, {"Stage": "dev"}, stack_name=f"samples-{uuid.uuid4().hex[:8]}")
    return Store(stack.refs["Table"], backing.dynamodb)


@pytest.fixture
def world(sample_store: Store) -> Iterator[tuple[Store, FakeQueue, FakeSender]]:
    """The sample data alone in the table, and the functions' services on it."""
    client, table = sample_store.table.client, sample_store.table_name
    for item in client.scan(TableName=table, ConsistentRead=True)["Items"]:
        client.delete_item(TableName=table, Key={"PK": item["PK"], "SK": item["SK"]})
    assert samples.seed(sample_store, utcnow())
    queue, sender = FakeQueue(), FakeSender()
    # As on the local stack (AllowPrivateTargets=true): the samples' receiver is http on 127.0.0.1.
    services = ProcessServices(store=sample_store, queue=queue, authenticator=Authenticator(sample_store.organisations))
    services.allow_private_targets = True
    use_services(services)
    use_deliverer(Deliverer(store=sample_store, sender=sender, queue=queue))
    yield sample_store, queue, sender
    use_services(None)
    use_deliverer(None)


def body(response: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(response["body"])
    return found


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["data"]]


# status, then a check of the answer's body
HTTP: dict[str, tuple[int, Callable[[dict[str, Any]], bool]]] = {
    "create_webhook_config": (201, lambda b: b["state"] == "new" and b["url"] == samples.CONFIG_URL + "created/"),
    "get_webhook_config": (200, lambda b: b["id"] == samples.CONFIG and b["state"] == "valid"),
    "list_webhook_configs": (200, lambda b: ids(b) == [samples.CONFIG]),
    "update_webhook_config": (200, lambda b: b["url"] == samples.CONFIG_URL + "v2/" and b["state"] == "new"),
    "test_webhook_config": (201, lambda b: b["target"] == samples.CONFIG and b["state"] == "pending"),
    "delete_webhook_config": (200, lambda b: b["id"] == samples.CONFIG and b["state"] == "deactivated"),
    "get_task": (200, lambda b: b["id"] == samples.TASK and b["target"] == samples.CONFIG),
    "list_tasks": (200, lambda b: ids(b) == [samples.TASK]),
    "get_key": (200, lambda b: b["id"] == samples.KEY and b["organisation"] == samples.ORGANISATION),
    "update_key": (200, lambda b: b["id"] == samples.KEY and b["webhook_config"] == samples.CONFIG),
    "get_organisation": (
        200,
        lambda b: b["id"] == samples.ORGANISATION and b["webhook_config_default"] == samples.CONFIG,
    ),
    "update_organisation": (200, lambda b: b["webhook_config_default"] == samples.CONFIG),
    "get_event": (200, lambda b: b["id"] == samples.EVENT and (b["type"], b["action"]) == ("session", "completed")),
    "list_events": (200, lambda b: ids(b) == [samples.EVENT, samples.DELIVERED_EVENT]),
    "list_event_attempts": (200, lambda b: ids(b) == [samples.ATTEMPT] and b["data"][0]["status_code"] == 200),
    "resend_event": (200, lambda b: b["id"] == samples.DELIVERED_EVENT and b["state"] == "pending"),
    "rotate_webhook_secret": (
        200,
        lambda b: b["id"] == samples.CONFIG and b["state"] == "valid" and b["previous_secret_expires"] is not None,
    ),
    "recover_webhook_config": (
        201,
        lambda b: (
            (b["type"], b["target"], b["state"]) == ("webhook_config.recover", samples.CONFIG, "pending")
            and b["result"]["found"] == 0
        ),
    ),
    "not_found": (404, lambda b: b["error"] == "not-found"),
}


def fresh(folder: str, event: dict[str, Any]) -> dict[str, Any]:
    """The sample as sent now: a recover's `since` may be at most 14 days back, so the
    sample's fixed date is moved to an hour ago (the request is otherwise the file's)."""
    if folder == "recover_webhook_config":
        since = utcnow() - dt.timedelta(hours=1)
        event = {**event, "body": json.dumps({**json.loads(event["body"]), "since": format_datetime(since)})}
    return event


def test_every_function_of_the_template_has_a_sample_event_and_every_sample_a_function() -> None:
    assert set(FUNCTIONS) == {p.stem for p in (ROOT / "events").glob("*.json")}
    assert set(FUNCTIONS) == {*HTTP, "deliver", "sweep", "console"}


@pytest.mark.parametrize("folder", sorted(HTTP))
def test_http_sample_event_is_the_route_of_its_function(folder: str) -> None:
    (route,) = [r for r in template.routes(TEMPLATE) if r.function.code_dir.name == folder]
    event = sample(folder)

    assert event["routeKey"] == ("$default" if route.path == "$default" else f"{route.method} {route.path}")
    assert event["requestContext"]["http"]["method"] in (route.method, "GET")
    assert event["headers"]["authorization"] == f"Token {samples.TOKEN}"


@pytest.mark.parametrize("folder", sorted(HTTP))
def test_http_function_with_its_sample_event_answers_as_documented(
    folder: str, world: tuple[Store, FakeQueue, FakeSender]
) -> None:
    status, check = HTTP[folder]

    response = load_function(folder).handler(fresh(folder, sample(folder)), None)

    assert response["statusCode"] == status, response["body"]
    assert check(body(response)), response["body"]


def test_deliver_with_its_sample_event_delivers_the_test_and_the_event_signed(
    world: tuple[Store, FakeQueue, FakeSender],
) -> None:
    store, _, sender = world

    result = load_function("deliver").handler(sample("deliver"), None)

    assert result == {"batchItemFailures": []}
    task = store.configs.get_task(samples.ORGANISATION, samples.TASK)
    event = store.events.get(samples.ORGANISATION, samples.EVENT)
    config = store.configs.get(samples.ORGANISATION, samples.CONFIG)
    assert task is not None
    assert event is not None
    assert config is not None
    assert (task.state, event.state) == ("succeeded", "delivered")
    assert task.event_id is not None
    assert sorted(url for url, _, _ in sender.sent) == sorted(
        [samples.CONFIG_URL + task.event_id, samples.CONFIG_URL + samples.EVENT]
    )
    for _, sent, headers in sender.sent:
        verify_ricloud(sent, headers["Ricloud-Signature"], config.secret)
        verify_standard(sent, headers, config.secret)


def test_sweep_with_its_sample_event_queues_the_lost_test_again(world: tuple[Store, FakeQueue, FakeSender]) -> None:
    _, queue, _ = world

    result = load_function("sweep").handler(sample("sweep"), None)

    assert result == {"tasks_requeued": 1}  # the sample task, lost two hours ago; the event is not due
    assert [j.get("task") for j in queue.jobs] == [samples.TASK]


def test_console_with_its_sample_event_serves_the_page() -> None:
    response = load_function("console").handler(sample("console"), None)

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"].startswith("text/html")
    assert "<html" in response["body"]
