"""Signatures (docs/design.md §7.4): both schemes over the same bytes, checked by the
standardwebhooks library and by an implementation written here from design.md's text."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook

from webhook_service.domain import generate_secret
from webhook_service.signing import SignatureError, signature_headers, verify_ricloud, verify_standard

BODY = b'{"id":"7c1f","resource":"event","data":{"note":"caf\xc3\xa9"}}'
NOW = 1_795_810_836


def test_signature_headers_standard_scheme_verifies_with_standardwebhooks() -> None:
    secret = generate_secret()
    now = int(time.time())  # the library checks the timestamp against its own clock
    headers = signature_headers(secret, "msg_1", BODY, timestamp=now)

    payload = Webhook(secret).verify(BODY, headers)

    assert payload["id"] == "7c1f"
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(now)


def test_signature_headers_ricloud_scheme_matches_the_spec() -> None:
    secret = generate_secret()

    header = signature_headers(secret, "msg_1", BODY, timestamp=NOW)["Ricloud-Signature"]

    expected = hmac.new(secret.encode("utf-8"), f"{NOW}.".encode() + BODY, hashlib.sha256).digest()
    assert header == f"t={NOW},s={base64.b64encode(expected).decode()}"


def test_verify_ricloud_accepts_a_fresh_signature_and_refuses_changed_bytes() -> None:
    secret = generate_secret()
    header = signature_headers(secret, "m", BODY, timestamp=NOW)["Ricloud-Signature"]

    verify_ricloud(BODY, header, secret, now=NOW + 10)
    with pytest.raises(SignatureError):
        verify_ricloud(BODY + b" ", header, secret, now=NOW + 10)


def test_verify_ricloud_refuses_an_old_signature() -> None:
    secret = generate_secret()
    header = signature_headers(secret, "m", BODY, timestamp=NOW)["Ricloud-Signature"]

    with pytest.raises(SignatureError, match="tolerance"):
        verify_ricloud(BODY, header, secret, tolerance=300, now=NOW + 301)


@pytest.mark.parametrize("header", ["", "t=1", "s=abc", "t=x,s=abc", "garbage"])
def test_verify_ricloud_malformed_header_is_refused(header: str) -> None:
    with pytest.raises(SignatureError):
        verify_ricloud(BODY, header, generate_secret(), now=NOW)


def test_verify_standard_accepts_any_header_case_and_one_of_several_signatures() -> None:
    secret = generate_secret()
    headers = signature_headers(secret, "msg_2", BODY, timestamp=NOW)
    headers = {k.upper(): v for k, v in headers.items()}
    headers["WEBHOOK-SIGNATURE"] = "v1,bm90IGl0 " + headers["WEBHOOK-SIGNATURE"]

    verify_standard(BODY, headers, secret, now=NOW)


def test_verify_standard_refuses_another_secret() -> None:
    headers = signature_headers(generate_secret(), "msg_3", BODY, timestamp=NOW)

    with pytest.raises(SignatureError):
        verify_standard(BODY, headers, generate_secret(), now=NOW)
