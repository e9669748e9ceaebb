"""The sender over real sockets on 127.0.0.1: the address guard, the vetted address used
for the connection (no second lookup), TLS checked against the URL's host name, and
connection reuse."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator

import pytest
import trustme

from devstack.receiver import Receiver
from webhook_service.sender import Sender

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def named_tls_receiver(authority: trustme.CA) -> Iterator[Receiver]:
    """HTTPS on 127.0.0.1 with a certificate for `receiver.test` only."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("receiver.test").configure_cert(context)
    server = Receiver(tls=context)
    yield server
    server.close()


def trusting(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


class ScriptedResolver:
    """Answers each lookup with the next list of addresses; records every lookup."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


def test_guard_on_refuses_loopback_and_sends_nothing(receiver: Receiver) -> None:
    before = len(receiver.deliveries)

    result = Sender(allow_private=False).post(receiver.url("/ok/guarded"), b"{}", {})

    assert result.error == "webhook-blocked-target"
    assert len(receiver.deliveries) == before


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.8", "::ffff:127.0.0.1", "fe80::1", "fd00:ec2::254"])
def test_guard_on_refuses_a_name_resolving_to_a_non_public_address(address: str) -> None:
    sender = Sender(allow_private=False, resolver=ScriptedResolver([address]))

    result = sender.post("https://receiver.test/hooks", b"{}", {})

    assert result.error == "webhook-blocked-target"
    assert str(ipaddress.ip_address(address)) not in result.response_excerpt


def test_guard_on_refuses_plain_http_even_to_a_public_address() -> None:
    sender = Sender(allow_private=False, resolver=ScriptedResolver(["93.184.216.34"]))

    assert sender.post("http://receiver.test/hooks", b"{}", {}).error == "webhook-blocked-target"


def test_connection_goes_to_the_vetted_address_without_a_second_lookup(receiver: Receiver) -> None:
    # `rebind.invalid` cannot resolve through the system: the request can only arrive if the
    # connection used the vetted address. A second lookup would get a different answer.
    resolver = ScriptedResolver(["127.0.0.1"], ["10.255.255.1"])
    sender = Sender(allow_private=True, resolver=resolver)

    result = sender.post(receiver.url("/ok/rebind", host="rebind.invalid"), b"{}", {})

    assert result.ok, result
    assert resolver.lookups == ["rebind.invalid"]
    assert receiver.wait_for("/ok/rebind").headers["Host"] == f"rebind.invalid:{receiver.port}"


def test_tls_is_checked_against_the_url_host_name(authority: trustme.CA, named_tls_receiver: Receiver) -> None:
    sender = Sender(allow_private=True, resolver=ScriptedResolver(["127.0.0.1"]), ssl_context=trusting(authority))

    result = sender.post(named_tls_receiver.url("/ok/sni", host="receiver.test"), b"{}", {})

    assert result.ok, result
    assert named_tls_receiver.wait_for("/ok/sni").headers["Host"] == f"receiver.test:{named_tls_receiver.port}"


def test_tls_certificate_for_another_name_is_a_tls_error(authority: trustme.CA, named_tls_receiver: Receiver) -> None:
    sender = Sender(allow_private=True, resolver=ScriptedResolver(["127.0.0.1"]), ssl_context=trusting(authority))

    result = sender.post(named_tls_receiver.url("/ok/wrong-name", host="other.test"), b"{}", {})

    assert result.error == "webhook-tls-error"
    assert named_tls_receiver.deliveries_to("/ok/wrong-name") == []


def test_sequential_deliveries_reuse_one_connection(authority: trustme.CA) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("receiver.test").configure_cert(context)
    server = Receiver(tls=context)
    try:
        sender = Sender(allow_private=True, resolver=ScriptedResolver(["127.0.0.1"]), ssl_context=trusting(authority))
        results = [sender.post(server.url(f"/ok/{n}", host="receiver.test"), b"{}", {}) for n in range(5)]
    finally:
        server.close()

    assert all(r.ok for r in results)
    assert server.connections == 1


def test_body_and_headers_are_sent_as_given(receiver: Receiver) -> None:
    body = '{"note":"café"}'.encode()

    Sender(allow_private=True).post(receiver.url("/ok/exact"), body, {"webhook-id": "abc"})

    delivery = receiver.wait_for("/ok/exact")
    assert delivery.body == body
    assert delivery.headers["webhook-id"] == "abc"
    assert delivery.headers["Content-Type"] == "application/json"
