"""What a delivery writes for CloudWatch: EMF metric lines and structured log fields,
read from the deliver function's real output."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from tests.unit.support import (
    Context,
    FakeDeliverer,
    FakeQueue,
    FakeServices,
    emf_metrics,
    json_lines,
    load_function,
    sqs_event,
)
from webhook_service.domain.tenants import Principal
from webhook_service.logs import logger
from webhook_service.service import configs as config_cases
from webhook_service.service import tasks as task_cases
from webhook_service.storage.store import Store

URL = "https://receiver.example/hooks/"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """The service's log lines, formatted exactly as its Powertools logger writes them."""
    handler = _Lines()
    handler.setFormatter(logger.registered_formatter)
    target = logging.getLogger(logger.name)
    target.addHandler(handler)
    yield handler.lines
    target.removeHandler(handler)


def deliver_one(services: FakeServices, caller: Principal, capfd: pytest.CaptureFixture[str]) -> tuple[str, str]:
    config = config_cases.create_config(services, caller, {"url": URL})
    task_id = task_cases.list_tasks(services, caller, {"target": config["id"]})["data"][0]["id"]
    capfd.readouterr()
    job = json.dumps({"job": "test", "task": task_id, "organisation": caller.organisation})
    load_function("deliver").handler(sqs_event(job), Context())
    return config["id"], task_id


def test_delivery_writes_outcome_and_duration_metrics(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer, capfd: pytest.CaptureFixture[str]
) -> None:
    deliver_one(services, caller, capfd)

    metrics = emf_metrics(json_lines(capfd.readouterr().out))

    assert ("Deliveries", {"service": "webhooks", "kind": "test", "outcome": "succeeded"}, [1.0]) in metrics
    (duration,) = [m for m in metrics if m[0] == "DeliveryDuration"]
    assert duration[1] == {"service": "webhooks"}
    assert duration[2] in (3, 3.0, [3.0])


def test_delivery_log_line_carries_ids_outcome_and_correlation_id(
    services: FakeServices,
    caller: Principal,
    deliverer: FakeDeliverer,
    capfd: pytest.CaptureFixture[str],
    log_lines: list[str],
) -> None:
    config_id, task_id = deliver_one(services, caller, capfd)

    lines = json_lines("\n".join(log_lines))

    (line,) = [entry for entry in lines if entry.get("message") == "test delivered"]
    assert line["level"] == "INFO"
    assert line["service"] == "webhooks"
    assert line["correlation_id"] == Context.aws_request_id
    assert line["task_id"] == task_id
    assert line["config_id"] == config_id
    assert line["event_id"]
    assert line["message_id"] == "m0"
    assert (line["status_code"], line["duration_ms"]) == (200, 3)
    assert line.get("error") is None  # Powertools leaves out fields whose value is None


def test_delivery_log_lines_hold_no_secret_and_no_body(
    services: FakeServices,
    caller: Principal,
    deliverer: FakeDeliverer,
    capfd: pytest.CaptureFixture[str],
    log_lines: list[str],
) -> None:
    config_id, _ = deliver_one(services, caller, capfd)
    secret = config_cases.get_config(services, caller, config_id)["secret"]

    out = "\n".join(log_lines) + capfd.readouterr().out
    assert len(log_lines) >= 2
    assert secret not in out
    assert '"resource":"event"' not in out  # the event body is never logged


def test_failed_event_counts_as_failed_for_good(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer, store: Store, capfd: pytest.CaptureFixture[str]
) -> None:
    from webhook_service.events import publish

    event = publish(caller.organisation, "session", "completed", {}, store=store, queue=FakeQueue())
    capfd.readouterr()
    job = json.dumps({"job": "event", "event": event.id, "organisation": caller.organisation, "attempt": 1})

    load_function("deliver").handler(sqs_event(job), Context())

    metrics = emf_metrics(json_lines(capfd.readouterr().out))
    assert ("Deliveries", {"service": "webhooks", "kind": "event", "outcome": "unconfigured"}, [1.0]) in metrics
    assert ("EventsFailed", {"service": "webhooks"}, [1.0]) in metrics or (
        "EventsFailed",
        {"service": "webhooks"},
        1.0,
    ) in metrics


def test_create_config_request_writes_its_metrics_once(
    installed_services: FakeServices, caller: Principal, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.support import http_event
    from webhook_service import admin

    _, token = admin.create_key(installed_services.store.organisations, caller.organisation)
    capfd.readouterr()

    load_function("create_webhook_config").handler(
        http_event("POST", "/configs/webhook", token=token, body=json.dumps({"url": URL})), Context()
    )

    metrics = emf_metrics(json_lines(capfd.readouterr().out))
    names = sorted(name for name, _, _ in metrics)
    assert names == ["ConfigsCreated", "TestsQueued"]
