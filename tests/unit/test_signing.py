"""Signatures (docs/design.md §7.4): both schemes over the same bytes, checked by the
standardwebhooks library and by an implementation written here from design.md's text."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook

from webhook_service.domain.configs import generate_secret
from webhook_service.signing import (
    SignatureError,
    signature_headers,
    verify_ricloud,
    verify_ricloud_headers,
    verify_standard,
)

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


# -- a rotation's overlap: two secrets (docs/design.md §14) ---------------------------------


def test_overlap_headers_sign_with_both_secrets_in_both_schemes() -> None:
    old, new = generate_secret(), generate_secret()
    now = int(time.time())

    headers = signature_headers(new, "msg_1", BODY, timestamp=now, previous_secret=old)

    first, second = headers["webhook-signature"].split(" ")
    assert first.startswith("v1,")
    assert second.startswith("v1,")
    assert Webhook(new).verify(BODY, headers)["id"] == "7c1f"
    assert Webhook(old).verify(BODY, headers)["id"] == "7c1f"
    verify_ricloud(BODY, headers["Ricloud-Signature"], old)  # what receivers that did not switch check
    verify_ricloud(BODY, headers["Ricloud-Signature-Next"], new)
    with pytest.raises(SignatureError):
        verify_ricloud(BODY, headers["Ricloud-Signature"], new)
    assert "Ricloud-Signature-Next" not in signature_headers(new, "msg_1", BODY, timestamp=now)


def test_verify_helpers_accept_one_secret_or_several() -> None:
    old, new, stranger = generate_secret(), generate_secret(), generate_secret()
    headers = signature_headers(new, "msg_1", BODY, timestamp=NOW, previous_secret=old)

    for secrets in ([old], [new], (stranger, new), [stranger, old]):
        verify_standard(BODY, headers, secrets, now=NOW)
        verify_ricloud_headers(BODY, headers, secrets, now=NOW)
    verify_ricloud(BODY, headers["Ricloud-Signature"], [stranger, old], now=NOW)
    for refused in ([stranger], [], stranger):
        with pytest.raises(SignatureError):
            verify_standard(BODY, headers, refused, now=NOW)
        with pytest.raises(SignatureError):
            verify_ricloud_headers(BODY, headers, refused, now=NOW)


def test_verify_ricloud_headers_reads_the_next_header_only_as_a_second_chance() -> None:
    old, new = generate_secret(), generate_secret()
    headers = signature_headers(new, "msg_1", BODY, timestamp=NOW, previous_secret=old)
    forged = dict(headers, **{"Ricloud-Signature-Next": headers["Ricloud-Signature"]})

    verify_ricloud_headers(BODY, {k.lower(): v for k, v in headers.items()}, new, now=NOW)
    with pytest.raises(SignatureError):
        verify_ricloud_headers(BODY, forged, new, now=NOW)
    with pytest.raises(SignatureError):
        verify_ricloud_headers(BODY + b" ", headers, [old, new], now=NOW)


def unpadded(secret: str) -> str:
    return secret.rstrip("=")


def test_the_standard_webhooks_library_accepts_a_secret_with_or_without_its_padding() -> None:
    secret = generate_secret()
    assert secret.endswith("=")  # 32 bytes are 44 base64 characters, one of them padding
    now = int(time.time())
    headers = signature_headers(secret, "msg_1", BODY, timestamp=now)

    for form in (secret, unpadded(secret), secret.removeprefix("whsec_"), unpadded(secret).removeprefix("whsec_")):
        assert Webhook(form).verify(BODY, headers)["id"] == "7c1f"  # what receivers' libraries do


@pytest.mark.parametrize("form", ["padded", "unpadded", "no prefix", "neither"])
def test_verify_helpers_accept_every_form_the_standard_webhooks_library_accepts(form: str) -> None:
    secret = generate_secret()
    given = {
        "padded": secret,
        "unpadded": unpadded(secret),
        "no prefix": secret.removeprefix("whsec_"),
        "neither": unpadded(secret).removeprefix("whsec_"),
    }[form]
    headers = signature_headers(secret, "msg_1", BODY, timestamp=NOW)

    verify_standard(BODY, headers, given, now=NOW)
    verify_ricloud(BODY, headers["Ricloud-Signature"], given, now=NOW)
    verify_ricloud_headers(BODY, headers, [generate_secret(), given], now=NOW)


def test_verify_helpers_still_refuse_another_secret_in_any_form() -> None:
    headers = signature_headers(generate_secret(), "msg_1", BODY, timestamp=NOW)
    other = generate_secret()

    for form in (other, unpadded(other), other.removeprefix("whsec_")):
        with pytest.raises(SignatureError):
            verify_standard(BODY, headers, form, now=NOW)
        with pytest.raises(SignatureError):
            verify_ricloud(BODY, headers["Ricloud-Signature"], form, now=NOW)
