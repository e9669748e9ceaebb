"""Settings that fail fast: the table and the events lane have no default, and a function
without them fails where it first needs one, naming the variable (docs/design.md §9)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from webhook_service import wiring
from webhook_service.settings import MissingSettingError, get_settings, reset_settings

_VARIABLES = ("TABLE_NAME", "QUEUE_URL", "TEST_QUEUE_URL", "SLOW_QUEUE_URL")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No table or queue in the environment; the settings and services read afresh, and forgotten after."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    wiring.use_services(None)
    wiring.use_deliverer(None)
    yield monkeypatch
    reset_settings()
    wiring.use_services(None)
    wiring.use_deliverer(None)


def test_a_missing_table_is_named_when_it_is_first_needed(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/events")
    settings = get_settings()  # what needs no table still reads
    assert settings.delivery_timeout > 0
    with pytest.raises(MissingSettingError, match=r"\bTABLE_NAME\b is not set") as raised:
        _ = settings.table_name
    assert raised.value.name == "TABLE_NAME"


def test_an_empty_queue_url_is_missing_too(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("TABLE_NAME", "webhooks")
    environment.setenv("QUEUE_URL", "")
    with pytest.raises(MissingSettingError, match=r"\bQUEUE_URL\b"):
        _ = get_settings().queue_url
    with pytest.raises(MissingSettingError, match=r"\bQUEUE_URL\b"):
        _ = get_settings().slow_queue_url  # the lanes fall back to the events lane, which is missing


def test_the_services_of_a_function_without_its_table_fail_naming_it(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/events")
    with pytest.raises(MissingSettingError, match="TABLE_NAME"):
        wiring.services()


def test_lanes_default_to_the_events_lane(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("TABLE_NAME", "webhooks")
    environment.setenv("QUEUE_URL", "https://sqs.example/events")
    environment.setenv("SLOW_QUEUE_URL", "https://sqs.example/slow")
    settings = get_settings()
    assert (settings.table_name, settings.queue_url) == ("webhooks", "https://sqs.example/events")
    assert (settings.test_queue_url, settings.slow_queue_url) == (
        "https://sqs.example/events",
        "https://sqs.example/slow",
    )


def test_the_deliver_function_without_its_queue_fails_naming_it(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("TABLE_NAME", "webhooks")
    with pytest.raises(MissingSettingError, match="QUEUE_URL"):
        wiring.deliverer()
