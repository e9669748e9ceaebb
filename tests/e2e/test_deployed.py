"""Smoke tests of a running stack over its public API: a deployed one (`make deploy`) or
`make dev`. Skipped unless E2E_API_URL and E2E_TOKEN name one; E2E_RECEIVER_URL, a
receiver the stack can reach that answers 2xx, turns on the delivery check. Every config
made here is deleted (deactivated) before the test ends.

    E2E_API_URL=https://<api>.execute-api.<region>.amazonaws.com E2E_TOKEN=rwk_... \\
    E2E_RECEIVER_URL=https://hooks.example.com/ricloud/ make test-e2e
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.stack import Client

API = os.environ.get("E2E_API_URL", "").rstrip("/")
TOKEN = os.environ.get("E2E_TOKEN", "")
RECEIVER = os.environ.get("E2E_RECEIVER_URL", "")
UNREACHABLE = "https://unreachable.invalid/hooks/"  # .invalid never resolves (RFC 6761)
TASK_SECONDS = 60.0

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (API and TOKEN), reason="no running stack named (E2E_API_URL, E2E_TOKEN)"),
]


@pytest.fixture(scope="module")
def client() -> Client:
    key = requests.get(f"{API}/key", headers={"Authorization": f"Token {TOKEN}"}, timeout=30)
    assert key.status_code == 200, key.text
    return Client(API, TOKEN, key.json()["organisation"], key.json()["id"])


@pytest.fixture
def made(client: Client) -> Iterator[list[str]]:
    """Config ids made by a test; deleted afterwards."""
    ids: list[str] = []
    yield ids
    for config_id in ids:
        client.delete(f"/configs/webhook/{config_id}")


def ended_task(client: Client, config_id: str) -> dict[str, Any]:
    (task,) = client.tasks_of(config_id)
    deadline = time.monotonic() + TASK_SECONDS
    while task["state"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(1)
        task = client.get(f"/tasks/{task['id']}").json()
    return task


def test_a_request_without_a_token_answers_401() -> None:
    response = requests.get(f"{API}/configs/webhook", timeout=30)

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_a_config_is_created_listed_and_deleted(client: Client, made: list[str]) -> None:
    config = client.create_config(UNREACHABLE)
    made.append(config["id"])

    assert config["state"] == "new"
    assert config["secret"].startswith("whsec_")
    assert client.get(f"/configs/webhook/{config['id']}").json()["url"] == UNREACHABLE
    deleted = client.delete(f"/configs/webhook/{config['id']}").json()
    assert deleted["state"] == "deactivated"
    listed = client.get("/configs/webhook", params={"state": "deactivated", "limit": 100}).json()
    assert config["id"] in {c["id"] for c in listed["data"]}


def test_an_unreachable_receiver_makes_the_config_invalid(client: Client, made: list[str]) -> None:
    config = client.create_config(UNREACHABLE)
    made.append(config["id"])

    task = ended_task(client, config["id"])

    assert task["state"] == "failed"
    assert task["error"] in ("webhook-connection-failed", "webhook-blocked-target")
    assert client.get(f"/configs/webhook/{config['id']}").json()["state"] == "invalid"


@pytest.mark.skipif(not RECEIVER, reason="no receiver named (E2E_RECEIVER_URL)")
def test_a_receiver_answering_2xx_makes_the_config_valid(client: Client, made: list[str]) -> None:
    config = client.create_config(RECEIVER)
    made.append(config["id"])

    task = ended_task(client, config["id"])

    assert (task["state"], task["error"]) == ("succeeded", None)
    assert 200 <= task["result"]["status_code"] < 300
    assert client.get(f"/configs/webhook/{config['id']}").json()["state"] == "valid"


def test_the_console_is_served_with_its_files_and_strict_headers() -> None:
    """The console's page and script come from its function's package (docs/console.md)."""
    page = requests.get(f"{API}/console", timeout=30)
    script = requests.get(f"{API}/console/app.js", timeout=30)

    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="console/app.js">' in page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert script.status_code == 200
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert requests.get(f"{API}/console/app.py", timeout=30).status_code == 404
