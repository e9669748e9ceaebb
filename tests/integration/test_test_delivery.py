"""Test deliveries end to end on the local stack: real receivers on 127.0.0.1, the config's
state written back, signatures checked by independent verifiers (docs/design.md §6 and §7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from ricloud.signing import Signature
from standardwebhooks.webhooks import Webhook

from devstack.receiver import Receiver
from tests.support.receivers import ResettingServer
from tests.support.stack import DELIVERY_TIMEOUT, Client, LocalStack
from webhook_service.domain.configs import new_test_task
from webhook_service.lanes import config_test_job
from webhook_service.storage.store import Store
from webhook_service.timefmt import utcnow

pytestmark = pytest.mark.integration


def ricloud_scheme_is_valid(body: bytes, header: str, secret: str) -> bool:
    """docs/design.md §7.4, written here from the text: t=<unix s>,s=<b64 HMAC-SHA256(secret, "<t>.<body>")>."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64decode(fields["s"]), expected)


def test_ok_receiver_makes_config_valid_and_task_succeeded(dev: Client, receiver: Receiver) -> None:
    config, task = dev.create_and_wait(receiver.url("/ok/hooks/"))

    assert config["state"] == "valid"
    assert task["state"] == "succeeded"
    assert task["error"] is None
    assert task["result"]["status_code"] == 200
    assert task["result"]["response_excerpt"] == "thanks"
    assert task["date_started"] <= task["date_completed"]


def test_delivery_is_one_signed_post_of_the_test_event(dev: Client, receiver: Receiver) -> None:
    config, _ = dev.create_and_wait(receiver.url("/ok/signed?tenant=7"))
    (delivery,) = [d for d in receiver.deliveries_to("/ok/signed/") if config["id"] in d.body.decode()]

    event = json.loads(delivery.body)
    assert delivery.path == f"/ok/signed/{event['id']}?tenant=7"
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["User-Agent"].startswith("ricloud-webhooks/")
    assert delivery.body == json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    assert (event["resource"], event["type"], event["action"]) == ("event", "webhook_config", "test")
    assert event["data"]["id"] == config["id"]
    assert "secret" not in event["data"]
    assert config["secret"] not in delivery.body.decode()
    assert event["webhook_config"] == config["id"]


def test_delivery_verifies_with_standardwebhooks_ricloud_and_the_spec(dev: Client, receiver: Receiver) -> None:
    config, _ = dev.create_and_wait(receiver.url("/ok/verify/"))
    (delivery,) = [d for d in receiver.deliveries_to("/ok/verify/") if config["id"] in d.body.decode()]
    secret = config["secret"]

    verified = Webhook(secret).verify(delivery.body, delivery.headers)
    Signature.from_header(delivery.headers["Ricloud-Signature"]).verify(delivery.body, secret, delta=600)

    assert verified["id"] == delivery.headers["webhook-id"]
    assert ricloud_scheme_is_valid(delivery.body, delivery.headers["Ricloud-Signature"], secret)
    assert not ricloud_scheme_is_valid(delivery.body + b" ", delivery.headers["Ricloud-Signature"], secret)


@pytest.mark.parametrize(
    ("path", "error", "status"),
    [
        ("/status/500/", "webhook-response-status", 500),
        ("/status/404/", "webhook-response-status", 404),
        ("/redirect/", "webhook-response-status", 302),
        (f"/slow/{DELIVERY_TIMEOUT * 3}/", "webhook-timeout", None),
    ],
)
def test_failing_receiver_makes_config_invalid(
    dev: Client, receiver: Receiver, path: str, error: str, status: int | None
) -> None:
    config, task = dev.create_and_wait(receiver.url(path))

    assert config["state"] == "invalid"
    assert task["state"] == "failed"
    assert task["error"] == error
    assert task["result"]["status_code"] == status


def test_redirect_is_not_followed(dev: Client, receiver: Receiver) -> None:
    before = len(receiver.deliveries_to("/ok"))

    dev.create_and_wait(receiver.url("/redirect/not-followed/"))

    assert len(receiver.deliveries_to("/ok")) == before


def test_slow_receiver_is_cut_at_the_timeout(dev: Client, receiver: Receiver) -> None:
    _, task = dev.create_and_wait(receiver.url("/slow/30/"))

    assert task["error"] == "webhook-timeout"
    assert DELIVERY_TIMEOUT * 1000 <= task["result"]["duration_ms"] < (DELIVERY_TIMEOUT + 1) * 1000


def test_connection_reset_makes_config_invalid(dev: Client, resetting: ResettingServer) -> None:
    config, task = dev.create_and_wait(resetting.url("/hooks/"))

    assert config["state"] == "invalid"
    assert task["error"] == "webhook-connection-failed"


def test_tls_handshake_failure_makes_config_invalid(dev: Client, untrusted_tls_receiver: Receiver) -> None:
    config, task = dev.create_and_wait(untrusted_tls_receiver.url("/ok/"))

    assert config["state"] == "invalid"
    assert task["error"] == "webhook-tls-error"
    assert untrusted_tls_receiver.deliveries == []


def test_refused_port_makes_config_invalid(dev: Client) -> None:
    config, task = dev.create_and_wait("http://127.0.0.1:9/hooks/")

    assert config["state"] == "invalid"
    assert task["error"] == "webhook-connection-failed"


def test_large_response_is_read_up_to_the_limit_and_excerpted(dev: Client, receiver: Receiver) -> None:
    config, task = dev.create_and_wait(receiver.url("/big/"))

    assert config["state"] == "valid"
    assert task["result"]["response_excerpt"] == "x" * 512


def test_slow_receiver_does_not_hold_the_others_in_its_batch(dev: Client, receiver: Receiver) -> None:
    slow = dev.create_config(receiver.url(f"/slow/{DELIVERY_TIMEOUT * 3}/batch/"))
    quick = [dev.create_config(receiver.url(f"/ok/batch-{n}/")) for n in range(4)]
    started = time.monotonic()

    quick_tasks = [dev.wait_task(dev.tasks_of(c["id"])[0]["id"]) for c in quick]
    quick_done = time.monotonic() - started
    slow_task = dev.wait_task(dev.tasks_of(slow["id"])[0]["id"])

    assert all(t["state"] == "succeeded" for t in quick_tasks)
    assert slow_task["error"] == "webhook-timeout"
    assert quick_done < DELIVERY_TIMEOUT + 1.5


def test_deactivation_while_a_test_is_in_flight_is_not_overwritten(dev: Client, receiver: Receiver) -> None:
    config = dev.create_config(receiver.url("/hold/race/"))
    receiver.wait_for("/hold/race/")

    assert dev.delete(f"/configs/webhook/{config['id']}").json()["state"] == "deactivated"
    receiver.release("race")
    (task,) = dev.tasks_of(config["id"])
    ended = dev.wait_task(task["id"])

    assert ended["state"] == "succeeded"  # the receiver did answer 200
    assert dev.get(f"/configs/webhook/{config['id']}").json()["state"] == "deactivated"


def test_test_queued_before_an_update_is_superseded_without_sending(
    stack: LocalStack, dev: Client, receiver: Receiver
) -> None:
    # A test queued before the update: its task is stored as the API stores it, and its job
    # reaches the queue only after the update, so the consumer finds the config changed.
    config, _ = dev.create_and_wait(receiver.url("/ok/superseded/"))
    sent = len(receiver.deliveries_to("/ok/superseded/"))
    store = Store(stack.table, stack.aws_client("dynamodb"))
    stored = store.configs.get(dev.organisation, config["id"])
    assert stored is not None
    task = new_test_task(stored, dev.key, utcnow())
    store.configs.create_test_task(stored, task)
    dev.post(f"/configs/webhook/{config['id']}", json={"state": "deactivated"})

    stack.aws_client("sqs").send_message(
        QueueUrl=stack.test_queue_url, MessageBody=json.dumps(config_test_job(task.id, dev.organisation, config["id"]))
    )
    ended = dev.wait_task(task.id)

    assert ended["state"] == "failed"
    assert ended["error"] == "superseded"
    assert ended["result"] is None
    assert len(receiver.deliveries_to("/ok/superseded/")) == sent
    assert dev.get(f"/configs/webhook/{config['id']}").json()["state"] == "deactivated"


def test_quick_test_is_not_held_up_by_tests_of_receivers_that_never_answer(dev: Client, receiver: Receiver) -> None:
    hanging = []
    for n in range(2):
        hanging.append(dev.create_config(receiver.url(f"/hold/never-{n}/")))
        receiver.wait_for(f"/hold/never-{n}/")
    try:
        config = dev.create_config(receiver.url("/ok/not-held-up/"))
        (task,) = dev.tasks_of(config["id"])
        ended = dev.wait_task(task["id"])
        held = [dev.tasks_of(c["id"])[0]["state"] for c in hanging]
    finally:
        for n in range(2):
            receiver.release(f"never-{n}")

    assert ended["state"] == "succeeded"
    assert held == ["processing", "processing"]  # still waiting on their receivers meanwhile


def test_second_test_while_one_is_open_answers_the_open_task(dev: Client, receiver: Receiver) -> None:
    config = dev.create_config(receiver.url("/hold/open-test/"))
    receiver.wait_for("/hold/open-test/")
    try:
        (first,) = dev.tasks_of(config["id"])
        response = dev.post(f"/configs/webhook/{config['id']}/test")
    finally:
        receiver.release("open-test")

    assert response.status_code == 201
    assert response.json()["id"] == first["id"]
    assert len(dev.tasks_of(config["id"])) == 1


def test_duplicated_job_does_not_deliver_again(stack: LocalStack, dev: Client, receiver: Receiver) -> None:
    config, task = dev.create_and_wait(receiver.url("/ok/duplicate/"))
    sqs = stack.aws_client("sqs")
    sent = len(receiver.deliveries_to("/ok/duplicate/"))

    sqs.send_message(
        QueueUrl=stack.queue_url,
        MessageBody=json.dumps({"job": "test", "task": task["id"], "organisation": dev.organisation}),
    )
    stack.wait_until_jobs_done()  # the copy has been run

    assert len(receiver.deliveries_to("/ok/duplicate/")) == sent
    assert dev.get(f"/tasks/{task['id']}").json() == task
    assert dev.get(f"/configs/webhook/{config['id']}").json()["state"] == "valid"
