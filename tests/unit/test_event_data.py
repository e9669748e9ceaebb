"""An event's data: numbers kept exactly as given, what the table cannot hold refused before
anything is written, and secret-like fields dropped by one documented rule."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tests.unit.support import FakeClock, FakeQueue, FakeSender, FakeServices, http_event, load_function, response_body
from webhook_service import admin
from webhook_service.domain.redaction import is_secret_field, redact
from webhook_service.domain.tenants import Principal
from webhook_service.errors import InvalidParameterError
from webhook_service.events import publish
from webhook_service.jobs.deliverer import Deliverer, event_body
from webhook_service.jobs.dispatch import handle_job
from webhook_service.service import configs as config_cases
from webhook_service.service import tenants as tenant_cases
from webhook_service.storage.store import Store

URL = "https://receiver.example/hooks/"
GET_EVENT = load_function("get_event")
LIST_EVENTS = load_function("list_events")


def published(store: Store, caller: Principal, data: Any, queue: FakeQueue | None = None) -> Any:
    return publish(caller.organisation, "session", "completed", data, store=store, queue=queue or FakeQueue())


def delivered_body(services: FakeServices, caller: Principal, store: Store, clock: FakeClock, data: Any) -> bytes:
    """Publish `data` to an organisation whose default config is valid, run the event's job
    and return the bytes the receiver got."""
    config = config_cases.create_config(services, caller, {"url": URL})
    stored = store.configs.get(caller.organisation, config["id"])
    assert stored is not None
    store.configs.replace(stored.__class__(**{**stored.__dict__, "state": "valid"}), stored.version, None)
    tenant_cases.update_organisation(services, caller, {"webhook_config_default": config["id"]})
    queue = FakeQueue()
    sender = FakeSender()
    published(store, caller, data, queue)
    handle_job(Deliverer(store=store, sender=sender, queue=queue, clock=clock), json.dumps(queue.jobs[0]))
    ((_, body, _),) = sender.sent
    return body


# -- numbers -----------------------------------------------------------------------------------

NUMBERS = {
    "price": 1.5,
    "rate": 0.1,
    "whole": 2.0,
    "big": 1e20,
    "small": 1e-05,
    "negative": -0.0,
    "count": 7,
    "exact": Decimal("1.50"),
    "digits": Decimal("12345678901234567890.123456789012345678"),
    "wide": 10**37,
}
NUMBER_TEXT = (
    '"price":1.5,"rate":0.1,"whole":2.0,"big":1e+20,"small":1e-05,"negative":-0.0,"count":7,'
    '"exact":1.50,"digits":12345678901234567890.123456789012345678,"wide":10000000000000000000000000000000000000'
)


def test_publish_float_is_stored_and_delivered_as_the_number_text_given(
    services: FakeServices, caller: Principal, store: Store, clock: FakeClock
) -> None:
    body = delivered_body(services, caller, store, clock, {"numbers": NUMBERS})

    assert b'"data":{"numbers":{' + NUMBER_TEXT.encode() + b"}}" in body


def test_publish_float_answers_the_same_numbers_on_get_and_list(
    installed_services: FakeServices, caller: Principal, store: Store
) -> None:
    token = admin.create_key(store.organisations, caller.organisation)[1]
    event = published(store, caller, {"numbers": NUMBERS})

    one = GET_EVENT.handler(
        http_event("GET", f"/events/{event.id}", route="GET /events/{id}", token=token, path_params={"id": event.id}),
        None,
    )
    listed = LIST_EVENTS.handler(http_event("GET", "/events", token=token), None)

    assert one["statusCode"] == 200
    assert '"numbers":{' + NUMBER_TEXT + "}" in one["body"]
    assert '"numbers":{' + NUMBER_TEXT + "}" in listed["body"]
    assert response_body(one)["data"]["numbers"]["rate"] == 0.1


def test_event_body_of_a_stored_event_is_the_same_bytes_every_time(caller: Principal, store: Store) -> None:
    event = published(store, caller, {"numbers": NUMBERS, "note": "caf\u00e9"})
    again = store.events.get(caller.organisation, event.id)

    assert again is not None
    assert event_body(again) == event_body(event)
    assert again.data["numbers"]["exact"] == Decimal("1.50")


# -- what the table cannot hold, refused before anything is written ---------------------------


def nested(depth: int) -> dict[str, Any]:
    """An object whose objects nest `depth` deep, itself the first."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"": 1}, "empty"),
        ({"a": [{"b": {"": None}}]}, "empty"),
        (nested(33), "32 levels"),
        ({"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}, "32 levels"),
        ({"n": 10**38 + 1}, "38 significant digits"),
        ({"n": Decimal("1.234567890123456789012345678901234567891")}, "38 significant digits"),
        ({"n": 10**126}, "out of range"),
        ({"n": -(10**126)}, "out of range"),
        ({"n": 10**5000}, "out of range"),  # str() of it would raise: Python's int-digits limit
        ({"n": 1e300}, "out of range"),
        ({"n": 5e-324}, "out of range"),
        ({"n": Decimal("1E-131")}, "out of range"),
        ({"n": Decimal("1E+126")}, "out of range"),
        ({"n": float("nan")}, "finite"),
        ({"n": float("inf")}, "finite"),
        ({"n": Decimal("NaN")}, "finite"),
        ({"n": Decimal("-Infinity")}, "finite"),
        ({"s": "\ud800"}, "Unicode"),
        ({"\udfff": 1}, "Unicode"),
        ({1: "a"}, "strings"),
        ({("a", "b"): 1}, "strings"),
        ({"big": "x" * 70_000}, "65536 bytes"),
        ({"big": "\u00e9" * 33_000}, "65536 bytes"),  # 66,000 bytes of UTF-8
    ],
)
def test_publish_data_the_table_cannot_hold_is_invalid_parameter_and_writes_nothing(
    caller: Principal, store: Store, data: dict[str, Any], problem: str
) -> None:
    queue = FakeQueue()

    with pytest.raises(InvalidParameterError) as raised:
        published(store, caller, data, queue)

    assert problem in (raised.value.params or {}).get("data", "")
    assert queue.jobs == []
    assert store.lists.events(caller.organisation, _any_query()).items == []


def _any_query() -> Any:
    from webhook_service.validation import parse_list_query

    return parse_list_query({}, {})


def test_publish_data_at_the_limits_is_accepted(caller: Principal, store: Store) -> None:
    data = {
        "deep": nested(31),  # in data: 32 levels
        "n38": 10**38 - 1,
        "max": Decimal("9.9999999999999999999999999999999999999E+125"),
        "min": Decimal("1E-130"),
        "negmin": Decimal("-1E-130"),
        "zero": Decimal("0E-200"),
        "round": 10**125,
        "f": 1.7976931348623157e125,
    }

    event = published(store, caller, data)

    again = store.events.get(caller.organisation, event.id)
    assert again is not None
    assert again.data["n38"] == 10**38 - 1
    assert again.data["deep"] == nested(31)


def test_publish_other_python_values_become_their_text(caller: Principal, store: Store) -> None:
    import datetime as dt
    import uuid

    when = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
    ident = uuid.UUID("7c1f0000-0000-4000-8000-000000000000")

    event = published(store, caller, {"when": when, "id": ident, "pair": (1, 2), "flag": True, "none": None})

    assert event.data == {"when": str(when), "id": str(ident), "pair": [1, 2], "flag": True, "none": None}


def test_cli_publish_event_with_an_empty_key_prints_invalid_parameter(
    caller: Principal, store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from webhook_service import cli

    monkeypatch.setattr(cli, "log_to_stderr", lambda: None)  # it would keep capsys's stream
    monkeypatch.setenv("TABLE_NAME", store.table.name)
    monkeypatch.setenv("QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/unused")
    args = ["publish-event", "--organisation", caller.organisation, "--type", "session", "--action", "done"]

    code = cli.main([*args, "--data", '{"a": {"": 1}}'])

    error = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert code == 1
    assert error["error"] == "invalid-parameter"
    assert "empty" in error["params"]["data"]


def test_cli_publish_event_keeps_the_number_text_of_its_json(
    caller: Principal, store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, backing: Any
) -> None:
    from webhook_service import cli

    monkeypatch.setattr(cli, "log_to_stderr", lambda: None)  # it would keep capsys's stream
    monkeypatch.setenv("TABLE_NAME", store.table.name)
    monkeypatch.setenv("QUEUE_URL", backing.queue_url)
    args = ["publish-event", "--organisation", caller.organisation, "--type", "session", "--action", "done"]

    code = cli.main([*args, "--data", '{"price": 1.50, "rate": 0.1, "n": 3}'])

    printed = capsys.readouterr().out
    assert code == 0
    assert '"price": 1.50' in printed
    assert '"rate": 0.1' in printed


def test_cli_publish_event_to_a_queue_that_refuses_prints_unavailable_and_stores_nothing(
    caller: Principal, store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, backing: Any
) -> None:
    from webhook_service import cli

    monkeypatch.setattr(cli, "log_to_stderr", lambda: None)  # it would keep capsys's stream
    monkeypatch.setenv("TABLE_NAME", store.table.name)
    monkeypatch.setenv("QUEUE_URL", backing.queue_url + "-gone")  # SQS answers QueueDoesNotExist
    args = ["publish-event", "--organisation", caller.organisation, "--type", "session", "--action", "done"]

    code = cli.main(args)

    err = capsys.readouterr().err
    error = json.loads(err.strip().splitlines()[-1])
    assert code == 1
    assert "Traceback" not in err
    assert error["error"] == "unavailable"
    assert store.lists.events(caller.organisation, _any_query()).items == []  # the job goes first


# -- redaction ---------------------------------------------------------------------------------

DROPPED = [
    "secret",
    "Secret",
    "SECRET",
    "client_secret",
    "clientSecret",
    "secret_key",
    "aws_secret_access_key",
    "webhook-secrets",
    "token",
    "Token",
    "access_token",
    "accessToken",
    "refresh_token",
    "id_token",
    "X-Auth-Token",
    "token_hash",
    "tokenHash",
    "password",
    "Password",
    "new_password",
    "passwd",
    "passphrase",
    "api_key",
    "apiKey",
    "APIKey",
    "api-key",
    "X-Api-Key",
    "x-apikey",
    "apikey",
    "private_key",
    "privateKey",
    "authorization",
    "Authorization",
    "proxy-authorization",
    "credentials",
    "credential",
    "aws_credentials",
    # plurals and compounds (the rule of design.md §7.8 catches them all)
    "tokens",
    "access_tokens",
    "accesstoken",
    "authtoken",
    "refreshtoken",
    "refreshTokens",
    "api_keys",
    "apiKeys",
    "private_keys",
    "jwt",
    "JWT",
    "id_jwt",
    "cookie",
    "cookies",
    "session_cookie",
    "Set-Cookie",
    "pwd",
    "user_pwd",
    "ssh_key",
    "sshKey",
    "signing_key",
    "signingkey",
    "session_key",
    "sessionKey",
    "secret_keys",
    "access_key",
    "encryption_key",
    "master_key",
    "client_key",
    "auth_key",
]
KEPT = [
    "session",
    "session_id",
    "sessions",
    "tokens_used",
    "token_count",
    "max_tokens",
    "tokenizer",
    "token_type",
    "key",
    "key_id",
    "public_key",
    "keys",
    "id",
    "author",
    "authority",
    "secretary",
    "passport",
    "state",
    "apis",
    # counts of tokens, and keys that are no secret
    "prompt_tokens",
    "total_tokens",
    "num_tokens",
    "token_limit",
    "keyboard",
    "monkey",
    "key_name",
    "public_keys",
    "cookie_consent",
    "jwt_expires",
]


@pytest.mark.parametrize("name", DROPPED)
def test_is_secret_field_secret_like_name_is_dropped(name: str) -> None:
    assert is_secret_field(name)


@pytest.mark.parametrize("name", KEPT)
def test_is_secret_field_resource_field_is_kept(name: str) -> None:
    assert not is_secret_field(name)


def test_publish_drops_secret_like_fields_at_any_depth(caller: Principal, store: Store) -> None:
    data = {
        "id": "s1",
        "Secret": "x",
        "session": {"id": "s2", "tokens_used": 12, "client": {"apiKey": "k", "Authorization": "Token t"}},
        "items": [{"password": "p", "name": "n"}, {"X-Api-Key": "k", "private_key": "pk", "credentials": {"a": 1}}],
    }

    event = published(store, caller, data)

    expected = {"id": "s1", "session": {"id": "s2", "tokens_used": 12, "client": {}}, "items": [{"name": "n"}, {}]}
    assert event.data == expected
    stored = store.events.get(caller.organisation, event.id)
    assert stored is not None
    assert stored.data == expected


def test_redact_leaves_values_alone() -> None:
    assert redact({"note": "my password is hunter2", "n": 1}) == {"note": "my password is hunter2", "n": 1}
