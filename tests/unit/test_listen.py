"""`make listen` (`python -m devstack.listen`) without a network: how a delivery is checked and the
line printed for it, where the API and token come from, and which port a config names.
(tests/integration/test_listen.py drives it over real sockets.)"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import pytest

from devstack import listen
from webhook_service.domain.configs import generate_secret
from webhook_service.signing import signature_headers

SECRET = generate_secret()
NOW = dt.datetime(2026, 11, 28, 9, 30, 5, tzinfo=dt.UTC)
EVENT_ID = "6f1c1e9e-8f6b-4f7e-9a51-0c4c1b0f2d11"
NOW_ORG = "0d7c4a8e-1b2f-4c3d-9e8f-a1b2c3d4e5f6"
BODY = json.dumps({"id": EVENT_ID, "type": "session", "action": "completed", "data": {}}).encode()


def signed(body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return signature_headers(secret, EVENT_ID, body, timestamp=int(NOW.timestamp()))


def test_check_both_signatures_valid_is_verified_with_one_line_of_time_kind_id_size() -> None:
    checked = listen.check(BODY, signed(), SECRET, now=NOW)

    assert checked.verified
    assert checked.line() == f"2026-11-28T09:30:05Z  session.completed  {EVENT_ID}  verified  {len(BODY)} B"


def test_check_signed_with_another_secret_is_not_verified_naming_both_headers() -> None:
    checked = listen.check(BODY, signed(secret=generate_secret()), SECRET, now=NOW)

    assert not checked.verified
    assert "NOT verified (Ricloud-Signature: " in checked.line()
    assert "; webhook-signature: " in checked.line()


def test_check_body_changed_after_signing_is_not_verified() -> None:
    tampered = BODY.replace(b"completed", b"cancelled")

    checked = listen.check(tampered, signed(), SECRET, now=NOW)

    assert not checked.verified
    assert checked.kind == "session.cancelled"


def test_check_one_signature_forged_is_not_verified_naming_only_that_one() -> None:
    headers = signed()
    headers["Ricloud-Signature"] = signed(secret=generate_secret())["Ricloud-Signature"]

    checked = listen.check(BODY, headers, SECRET, now=NOW)

    assert checked.problems == ("Ricloud-Signature: the Ricloud-Signature does not match",)


def test_check_stale_timestamp_is_not_verified() -> None:
    checked = listen.check(BODY, signed(), SECRET, now=NOW + dt.timedelta(minutes=6))

    assert not checked.verified


def test_check_unsigned_body_that_is_not_json_is_described_from_its_headers() -> None:
    checked = listen.check(b"hello", {"webhook-id": "abc"}, SECRET, now=NOW)

    assert (checked.kind, checked.event_id, checked.size, checked.verified) == ("?", "abc", 5, False)


def test_check_headers_in_any_case_are_read() -> None:
    headers = {k.upper(): v for k, v in signed().items()}

    assert listen.check(BODY, headers, SECRET, now=NOW).verified


def test_check_without_a_secret_is_not_verified() -> None:
    assert listen.check(BODY, signed(), None, now=NOW).problems == ("no secret to check with",)


def test_check_line_never_holds_the_secret() -> None:
    for secret in (SECRET, generate_secret()):
        assert SECRET not in listen.check(BODY, signed(secret=secret), SECRET, now=NOW).line()


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://127.0.0.1:8123/", 8123),
        ("http://localhost:9000/hooks/", 9000),
        ("http://127.0.0.1/", 80),
        ("https://127.0.0.1:8123/", None),
        ("http://receiver.example:8123/", None),
    ],
)
def test_port_of_config_url_names_a_port_here_only_for_loopback_http(url: str, port: int | None) -> None:
    assert listen.port_of(url) == port


@pytest.fixture
def no_api_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No RICLOUD_* variables, and a .devstack folder of the test's own."""
    monkeypatch.delenv("RICLOUD_URL", raising=False)
    monkeypatch.delenv("RICLOUD_TOKEN", raising=False)
    monkeypatch.setenv("DEVSTACK_DATA", str(tmp_path))
    return tmp_path


def test_resolve_api_flags_come_first(no_api_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RICLOUD_URL", "http://env.example/")
    monkeypatch.setenv("RICLOUD_TOKEN", "rwk_env")

    assert listen.resolve_api("http://flag.example/", "rwk_flag") == listen.Api("http://flag.example/", "rwk_flag")


def test_resolve_api_environment_before_what_make_dev_saved(
    no_api_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (no_api_settings / "dev.json").write_text(json.dumps({"url": "http://127.0.0.1:3999", "token": "rwk_saved"}))
    monkeypatch.setenv("RICLOUD_TOKEN", "rwk_env")

    assert listen.resolve_api(None, None) == listen.Api("http://127.0.0.1:3999", "rwk_env")


def test_resolve_api_what_make_dev_saved_is_the_default(no_api_settings: Path) -> None:
    (no_api_settings / "dev.json").write_text(json.dumps({"url": "http://127.0.0.1:3999", "token": "rwk_saved"}))

    assert listen.resolve_api(None, None) == listen.Api("http://127.0.0.1:3999", "rwk_saved")


def test_resolve_api_no_token_anywhere_raises_listen_error_saying_where_to_put_one(no_api_settings: Path) -> None:
    with pytest.raises(listen.ListenError, match="--token"):
        listen.resolve_api(None, None)


def test_check_accepts_any_of_several_secrets_through_a_rotation() -> None:
    new = generate_secret()
    during = signature_headers(new, EVENT_ID, BODY, timestamp=int(NOW.timestamp()), previous_secret=SECRET)
    after = signed(secret=new)

    assert listen.check(BODY, during, [SECRET], now=NOW).verified
    assert listen.check(BODY, during, [new], now=NOW).verified
    assert not listen.check(BODY, after, [SECRET], now=NOW).verified
    assert listen.check(BODY, after, [SECRET, new], now=NOW).verified


def test_listener_reads_the_secret_again_when_a_delivery_verifies_with_none(capsys: pytest.CaptureFixture[str]) -> None:
    new = generate_secret()
    reads: list[str] = []

    def current_secret() -> str:
        reads.append(new)
        return new

    listener = listen.Listener(0, refresh=current_secret)
    listener.start()
    try:
        listener.set_secret(SECRET)
        after = signature_headers(new, EVENT_ID, BODY, timestamp=int(dt.datetime.now(dt.UTC).timestamp()))

        first = listener.record(BODY, after)
        second = listener.record(BODY, after)
    finally:
        listener.close()

    assert first.verified
    assert second.verified
    assert reads == [new]  # read once; the second delivery verified with what it had
    assert new not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, accents é and emoji 🙂", "plain text, accents é and emoji 🙂"),
        ("\x1b[2K\rfake", "\\x1b[2K\\x0dfake"),  # C0: an ESC sequence and a carriage return
        ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),  # OSC 52, a clipboard write
        ("a\x9bb\x85c", "a\\x9bb\\x85c"),  # C1 controls (CSI, NEL)
        ("left\u202eright\u2066", "left\\u202eright\\u2066"),  # bidirectional overrides and isolates
        ("one\u2028two\u2029", "one\\u2028two\\u2029"),  # line and paragraph separators
        ("zero\u200bwidth\x00\x7f", "zero\\u200bwidth\\x00\\x7f"),
    ],
)
def test_printable_shows_every_control_format_and_separator_character_as_an_escape(text: str, shown: str) -> None:
    assert listen.printable(text) == shown


def test_check_forged_delivery_line_has_none_of_its_fields() -> None:
    body = json.dumps({"id": "forged-id", "type": "\x1b[2K\rsession", "action": "completed", "data": {}}).encode()

    line = listen.check(body, signed(body, secret=generate_secret()), SECRET, now=NOW).line()

    assert line.startswith("2026-11-28T09:30:05Z  NOT verified")
    assert "session" not in line
    assert "completed" not in line
    assert "forged-id" not in line
    assert "\x1b" not in line


def test_max_body_holds_the_largest_event_the_service_delivers() -> None:
    from webhook_service.domain.events import EventState, new_event
    from webhook_service.events import MAX_DATA_BYTES
    from webhook_service.jsontext import dumps
    from webhook_service.views import event_resource

    filler = "x" * (MAX_DATA_BYTES - len('{"blob":""}'))
    event = new_event(NOW_ORG, "a" * 64, "b" * 64, {"blob": filler}, NOW_ORG, NOW)
    event = replace(event, state=EventState.FAILED, error="webhook-response-status", attempts=99, date_delivered=NOW)
    body = dumps(event_resource(event)).encode()

    assert len(dumps({"blob": filler}).encode()) == MAX_DATA_BYTES
    assert len(body) <= listen.MAX_BODY


def test_listener_port_in_use_says_which_and_how_to_listen_elsewhere() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]

        with pytest.raises(listen.ListenError) as refused:
            listen.Listener(port)

    assert f"cannot listen on 127.0.0.1:{port}" in str(refused.value)
    assert "LISTEN_PORT=" in str(refused.value)
