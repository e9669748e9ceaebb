"""What a receiver sends is stored defanged (docs/design.md §7.6): response excerpts and error
text keep printable text, every control character, bidirectional override or isolate and
line or paragraph separator replaced by a visible escape, so neither a terminal nor the
console shows what the receiver hid. A status outside 100-599 is no HTTP answer."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from tests.unit.support import FakeQueue, FakeServices
from webhook_service.domain.delivery import (
    CONNECTION_FAILED,
    EXCERPT_MAX_CHARS,
    DeliveryResult,
    is_http_status,
    printable,
)
from webhook_service.domain.tenants import Principal
from webhook_service.jobs.deliverer import Deliverer
from webhook_service.jobs.dispatch import handle_job
from webhook_service.sender import EXCERPT_CHARS, failed_result
from webhook_service.service import configs as config_cases
from webhook_service.service import events as event_cases
from webhook_service.service import tasks as task_cases

HOSTILE = "ok\x00\x07\x1b[2J\x1b]52;c;aGk=\x07\u009b31m\u0085\u2028\u2029\u202eevil\u202a\u2066\u2069\u200f\x7f\r!"
DEFANGED = (
    "ok\\u0000\\u0007\\u001b[2J\\u001b]52;c;aGk=\\u0007\\u009b31m\\u0085\\u2028\\u2029\\u202eevil"
    "\\u202a\\u2066\\u2069\\u200f\\u007f\\u000d!"
)


def test_controls_bidi_overrides_and_separators_become_visible_escapes() -> None:
    assert printable(HOSTILE) == DEFANGED


@pytest.mark.parametrize(
    "text", ['{"ok": true}', "line one\nline two\ttabbed", "café ünïcode 日本", "👩\u200d💻 family", "\\u202e as text"]
)
def test_printable_text_is_kept_as_it_is(text: str) -> None:
    assert printable(text) == text


def test_an_escape_is_never_cut_by_the_excerpts_length() -> None:
    assert printable("a" * 508 + "\u202e", 512) == "a" * 508
    assert printable("a" * 506 + "\u202eb", 512) == "a" * 506 + "\\u202e"
    assert len(printable("\x00" * 600, EXCERPT_MAX_CHARS)) == 510  # 85 escapes of 6 characters


@pytest.mark.parametrize(
    ("status", "http"), [(99, False), (100, True), (200, True), (599, True), (600, False), (999, False)]
)
def test_a_status_outside_100_to_599_is_not_http(status: int, http: bool) -> None:
    assert is_http_status(status) is http


def test_the_senders_error_text_is_defanged() -> None:
    result = failed_result(CONNECTION_FAILED, 0.0, "BadStatusLine: '\x1b[2J\u202eHTTP/1.1 200 OK'")

    assert result.response_excerpt == "BadStatusLine: '\\u001b[2J\\u202eHTTP/1.1 200 OK'"
    assert len(failed_result(CONNECTION_FAILED, 0.0, "\x1b" * 1000).response_excerpt) <= EXCERPT_CHARS


class HostileSender:
    """Answers every delivery 200 with the hostile excerpt, as an unguarded sender would."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryResult:
        return DeliveryResult(error=None, status_code=200, duration_ms=3, response_excerpt=HOSTILE)


def test_a_tests_stored_result_and_attempt_keep_printable_text_only(
    services: FakeServices, caller: Principal, queue: FakeQueue
) -> None:
    config = config_cases.create_config(services, caller, {"url": "https://receiver.example/hooks/"})
    deliverer = Deliverer(store=services.store, sender=HostileSender(), queue=FakeQueue(), clock=services.clock)

    handle_job(deliverer, json.dumps(queue.jobs.pop(0)))

    (task,) = task_cases.list_tasks(services, caller, {"target": config["id"]})["data"]
    assert task["result"]["response_excerpt"] == DEFANGED
    (event,) = event_cases.list_events(services, caller, {})["data"]
    (attempt,) = event_cases.list_attempts(services, caller, event["id"], {})["data"]
    assert attempt["response_excerpt"] == DEFANGED
