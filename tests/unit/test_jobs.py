"""The deliver function's test runs on moto, with a fake sender: state write-back,
staleness, races, at-least-once jobs, and the batch's partial response (docs/design.md §6.3-§6.6, §7.11)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from devstack.aws import serial
from tests.unit.support import FakeDeliverer, FakeSender, FakeServices, RecordingClient, as_dynamodb, sqs_event
from webhook_service.consumer import BatchFailedError, handle_batch
from webhook_service.domain.tenants import Principal
from webhook_service.errors import DependencyError
from webhook_service.service import configs as config_cases
from webhook_service.service import tasks as task_cases
from webhook_service.storage.store import Store

URL = "https://receiver.example/hooks/"


def first_task_id(services: FakeServices, caller: Principal, config_id: str) -> str:
    tasks = task_cases.list_tasks(services, caller, {"target": config_id})["data"]
    return str(tasks[-1]["id"])


def job_body(caller: Principal, task_id: str, config_id: str | None = None) -> str:
    """A test job; naming the config (as the API does) lets one request read both."""
    job = {"job": "test", "task": task_id, "organisation": caller.organisation}
    if config_id is not None:
        job["config"] = config_id
    return json.dumps(job)


def run(deliverer: FakeDeliverer, caller: Principal, task_id: str) -> dict[str, Any]:
    return handle_batch(sqs_event(job_body(caller, task_id)), None)


def test_run_test_job_naming_its_config_reads_task_and_config_in_one_request(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer, store: Store
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    task_id = first_task_id(services, caller, config["id"])
    recording = RecordingClient(store.table.client)
    deliverer.store = Store(store.table.name, as_dynamodb(recording))

    handle_batch(sqs_event(job_body(caller, task_id, config["id"])), None)

    assert config_cases.get_config(services, caller, config["id"])["state"] == "valid"
    assert recording.calls == ["batch_get_item", "update_item", "transact_write_items"]


def test_run_test_2xx_makes_config_valid_and_task_succeeded(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    task_id = first_task_id(services, caller, config["id"])

    assert run(deliverer, caller, task_id) == {"batchItemFailures": []}

    task = task_cases.get_task(services, caller, task_id)
    assert config_cases.get_config(services, caller, config["id"])["state"] == "valid"
    assert task["state"] == "succeeded"
    assert task["result"] == {"status_code": 200, "duration_ms": 3, "response_excerpt": "ok"}
    assert task["date_started"] is not None
    assert task["date_completed"] is not None


def test_run_test_non_2xx_makes_config_invalid(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer
) -> None:
    deliverer.sender = FakeSender(status=503)
    config = config_cases.create_config(services, caller, {"url": URL})

    run(deliverer, caller, first_task_id(services, caller, config["id"]))

    task = task_cases.get_task(services, caller, first_task_id(services, caller, config["id"]))
    assert config_cases.get_config(services, caller, config["id"])["state"] == "invalid"
    assert (task["state"], task["error"]) == ("failed", "webhook-response-status")


def test_run_test_posts_the_event_to_url_plus_event_id_signed(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer, store: Store
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL + "?a=1"})
    task_id = first_task_id(services, caller, config["id"])

    run(deliverer, caller, task_id)

    ((url, body, headers),) = deliverer.sender.sent
    event = json.loads(body)
    assert url == f"{URL}{event['id']}?a=1"
    assert headers["webhook-id"] == event["id"]
    assert "Ricloud-Signature" in headers
    stored = store.events.get(caller.organisation, event["id"])
    assert stored is not None
    assert stored.state == "delivered"
    assert stored.webhook_config == config["id"]


def test_run_test_stale_version_is_superseded_without_sending(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    task_id = first_task_id(services, caller, config["id"])
    config_cases.update_config(services, caller, config["id"], {"url": URL + "v2"})

    run(deliverer, caller, task_id)

    task = task_cases.get_task(services, caller, task_id)
    assert (task["state"], task["error"], task["result"]) == ("failed", "superseded", None)
    assert deliverer.sender.sent == []
    assert config_cases.get_config(services, caller, config["id"])["state"] == "new"


def test_run_test_deactivated_config_is_superseded_without_sending(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    task_id = first_task_id(services, caller, config["id"])
    config_cases.delete_config(services, caller, config["id"])

    run(deliverer, caller, task_id)

    assert task_cases.get_task(services, caller, task_id)["error"] == "superseded"
    assert deliverer.sender.sent == []


def test_run_test_update_during_flight_is_not_overwritten(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    task_id = first_task_id(services, caller, config["id"])
    deliverer.sender = FakeSender(
        before=lambda: config_cases.update_config(services, caller, config["id"], {"url": URL + "moved"})
    )

    run(deliverer, caller, task_id)

    now = config_cases.get_config(services, caller, config["id"])
    assert now["state"] == "new"
    assert now["url"] == URL + "moved"
    assert task_cases.get_task(services, caller, task_id)["state"] == "succeeded"


def test_run_test_duplicated_job_sends_once(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    task_id = first_task_id(services, caller, config["id"])

    run(deliverer, caller, task_id)
    ended = task_cases.get_task(services, caller, task_id)
    run(deliverer, caller, task_id)

    assert len(deliverer.sender.sent) == 1
    assert task_cases.get_task(services, caller, task_id) == ended


def test_run_test_job_rerun_after_a_crash_resends_the_same_event(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer, store: Store
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    task_id = first_task_id(services, caller, config["id"])
    task = store.configs.get_task(caller.organisation, task_id)
    assert task is not None
    store.configs.start_task(task, "0b7e6a52-4e9c-4b0e-9d59-2f1f6c1d2a10", deliverer.clock())  # the crashed run

    run(deliverer, caller, task_id)

    ((_, _, headers),) = deliverer.sender.sent
    assert headers["webhook-id"] == "0b7e6a52-4e9c-4b0e-9d59-2f1f6c1d2a10"
    assert task_cases.get_task(services, caller, task_id)["state"] == "succeeded"


def test_handle_batch_unreadable_job_alone_is_reported_failed(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    good = job_body(caller, first_task_id(services, caller, config["id"]))

    response = handle_batch(sqs_event("not json", good, '{"job": "unknown"}'), None)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m2"}]}
    assert config_cases.get_config(services, caller, config["id"])["state"] == "valid"


def test_handle_batch_storage_failure_is_reported_for_retry(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_cases.create_config(services, caller, {"url": URL})
    task_id = first_task_id(services, caller, config["id"])

    original = deliverer.store.configs.record_test_outcome

    def unavailable(config: Any, new_state: Any, task: Any, event: Any, attempt: Any = None) -> str:
        if task.id == task_id:
            raise DependencyError("ProvisionedThroughputExceededException")
        return original(config, new_state, task, event, attempt)

    monkeypatch.setattr(deliverer.store.configs, "record_test_outcome", unavailable)
    other = config_cases.create_config(services, caller, {"url": URL + "other"})
    event = sqs_event(job_body(caller, task_id), job_body(caller, first_task_id(services, caller, other["id"])))

    assert handle_batch(event, None) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert task_cases.get_task(services, caller, task_id)["state"] == "processing"


def test_handle_batch_every_job_failing_raises_so_the_whole_batch_returns(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer
) -> None:
    with pytest.raises(BatchFailedError):
        handle_batch(sqs_event("not json", "{}"), None)


def test_handle_batch_runs_the_deliveries_of_a_batch_at_once(
    services: FakeServices, caller: Principal, deliverer: FakeDeliverer
) -> None:
    # Ten deliveries meet at a barrier: the batch completes only if all ten run concurrently.
    barrier = threading.Barrier(10, timeout=10)
    deliverer.sender = FakeSender(before=barrier.wait)
    deliverer.store = Store(deliverer.store.table.name, serial(deliverer.store.table.client))
    configs = [config_cases.create_config(services, caller, {"url": f"{URL}{n}"}) for n in range(10)]
    bodies = [job_body(caller, first_task_id(services, caller, c["id"])) for c in configs]

    response = handle_batch(sqs_event(*bodies), None)

    assert response == {"batchItemFailures": []}
    assert {config_cases.get_config(services, caller, c["id"])["state"] for c in configs} == {"valid"}
