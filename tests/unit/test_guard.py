"""The delivery address guard (SPEC section 7): only public addresses, in every form."""

from __future__ import annotations

import ipaddress

import pytest

from webhook_service.guard import BlockedTargetError, ResolutionError, is_public, vet

BLOCKED = [
    "127.0.0.1",  # loopback
    "127.9.9.9",
    "10.1.2.3",  # private
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # link-local: the cloud metadata service
    "169.254.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "224.0.0.1",  # multicast
    "240.0.0.1",  # reserved
    "0.0.0.0",  # unspecified  # noqa: S104 - an address under test, not a bind
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",  # link-local
    "fc00::1",  # unique local
    "fd12:3456::1",
    "ff02::1",  # multicast
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "fd00:ec2::254",  # AWS's IPv6 metadata address
]
PUBLIC = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34", "64:ff9b::101:101"]


@pytest.mark.parametrize("address", BLOCKED)
def test_is_public_non_global_address_is_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_is_public_global_address_is_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_vet_host_with_one_private_address_among_public_ones_is_refused() -> None:
    with pytest.raises(BlockedTargetError, match=r"10\.0\.0\.7"):
        vet("mixed.example", 443, lambda host, port: ["93.184.216.34", "10.0.0.7"])


def test_vet_literal_address_is_checked_without_resolving() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("a literal address needs no lookup")

    with pytest.raises(BlockedTargetError):
        vet("[::ffff:127.0.0.1]", 443, resolver)
    assert vet("1.1.1.1", 443, resolver) == "1.1.1.1"


def test_vet_returns_the_first_vetted_address_and_resolves_once() -> None:
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["93.184.216.34", "2606:4700:4700::1111"]

    assert vet("receiver.example", 443, resolver) == "93.184.216.34"
    assert calls == ["receiver.example"]


def test_vet_allow_private_lets_loopback_through() -> None:
    assert vet("localhost", 80, lambda host, port: ["127.0.0.1"], allow_private=True) == "127.0.0.1"


def test_vet_host_without_addresses_is_a_resolution_error() -> None:
    with pytest.raises(ResolutionError):
        vet("nothing.example", 443, lambda host, port: [])


@pytest.mark.parametrize("host", ["receiver.example", "10.0.0.1", "93.184.216.34", "::ffff:127.0.0.1x"])
def test_vet_loopback_only_refuses_anything_but_loopback_without_a_lookup(host: str) -> None:
    def resolver(name: str, port: int) -> list[str]:
        raise AssertionError("no lookup on a loopback-only stack")

    with pytest.raises(BlockedTargetError, match="only loopback"):
        vet(host, 443, resolver, allow_private=True, loopback_only=True)


def test_vet_loopback_only_allows_loopback_and_localhost() -> None:
    assert vet("127.0.0.2", 80, lambda h, p: [], allow_private=True, loopback_only=True) == "127.0.0.2"
    assert vet("[::1]", 80, lambda h, p: [], allow_private=True, loopback_only=True) == "::1"
    assert vet("localhost", 80, lambda h, p: ["127.0.0.1"], allow_private=True, loopback_only=True) == "127.0.0.1"
