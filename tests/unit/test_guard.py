"""The delivery address guard (docs/design.md §7.7): only public addresses, in every form, by
tables of its own (the same answer on every Python: the guard's cases run under the
functions' runtime Python too)."""

from __future__ import annotations

import glob
import ipaddress
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from devstack.template import load_template
from webhook_service.guard import BlockedTargetError, ResolutionError, embedded_ipv4, is_public, resolve_within, vet

ROOT = Path(__file__).resolve().parents[2]

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
    "0.1.2.3",  # "this network"
    "192.0.0.8",  # IETF protocol assignments
    "192.0.2.1",  # documentation (TEST-NET-1, -2, -3)
    "198.51.100.7",
    "203.0.113.9",
    "198.18.0.1",  # benchmarking
    "192.88.99.1",  # the deprecated 6to4 relay anycast
    "fec0::1",  # site-local (deprecated, never global)
    "feff:ffff::1",
    "64:ff9b:1::1",  # local-use NAT64: the whole /48, whatever it embeds
    "64:ff9b:1:101:1:100::",  # local-use NAT64 of 1.1.1.1 (RFC 6052, /48 prefix)
    "64:ff9b:1::101:101",  # what reading its last 32 bits would take for 1.1.1.1
    "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
    "3fff::1",  # documentation (RFC 9637)
    "3fff:fff:ffff::1",
    "2001:db8::1",  # documentation
    "2001::1",  # Teredo: a tunnel to any IPv4 address
    "2001:2::1",  # benchmarking
    "100::1",  # discard-only
    "5f00::1",  # SRv6 segment identifiers
    "::1.2.3.4",  # IPv4-compatible (deprecated)
    "::ffff:0:808:808",  # IPv4-translated
    "4000::1",  # outside global unicast (2000::/3)
    "fe80::1%eth0",  # scoped
]
PUBLIC = [
    "93.184.216.34",
    "1.1.1.1",
    "8.8.8.8",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "2a00:1450:4001:80b::200e",
    "::ffff:93.184.216.34",
    "64:ff9b::101:101",  # well-known NAT64 of 1.1.1.1
    "2002:101:101::1",  # 6to4 of 1.1.1.1
    "3ffe:ffff::1",  # just outside 3fff::/20
    "3fff:1000::1",
]


@pytest.mark.parametrize("address", BLOCKED)
def test_is_public_non_global_address_is_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_is_public_global_address_is_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("64:ff9b:1:a00:0:100::", "10.0.0.1"),  # RFC 6052 /48: bits 48-63 and 72-87, not the last 32
        ("64:ff9b:1:101:1:100::", "1.1.1.1"),
        ("64:ff9b:1:c0a8:1:100:0:0", "192.168.1.1"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # /96: the last 32 bits
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("2002:a00:1::", "10.0.0.1"),
        ("2606:4700:4700::1111", None),
    ],
)
def test_embedded_ipv4_reads_each_prefix_where_its_rfc_places_it(address: str, embedded: str | None) -> None:
    found = embedded_ipv4(ipaddress.IPv6Address(address))

    assert (str(found) if found else None) == embedded


def runtime_python() -> str | None:
    """The functions' runtime Python (the template's Runtime), if this machine has it."""
    version = load_template()["Globals"]["Function"]["Runtime"].removeprefix("python")
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"))
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", ""], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def test_guard_tables_answer_the_same_under_the_runtime_python() -> None:
    python = runtime_python()
    if python is None:
        pytest.skip("the functions' runtime Python (see infra/template.yaml) is not installed here")
    script = (
        "import ipaddress, json, sys\n"
        "from webhook_service.guard import embedded_ipv4, is_public\n"
        "cases = json.load(sys.stdin)\n"
        "print(json.dumps({'version': sys.version_info[:2], 'public': [is_public(ipaddress.ip_address(a)) "
        "for a in cases], 'embedded': [str(embedded_ipv4(ipaddress.ip_address(a)) or '') "
        "for a in cases if ':' in a]}))\n"
    )
    cases = BLOCKED + PUBLIC
    done = subprocess.run(
        # -E -s: no PYTHON* variables, no user site; `-c` puts the working folder (the layer's
        # source) first on the path, so the layer is imported as it ships, nothing installed.
        [python, "-E", "-s", "-c", script],
        cwd=ROOT / "layers" / "webhook_service",
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer = json.loads(done.stdout)

    here = [str(embedded_ipv4(ipaddress.IPv6Address(a.split("%")[0])) or "") for a in cases if ":" in a]
    assert answer["version"] == [int(n) for n in python.rsplit("python", 1)[1].split(".")[:2]]
    assert answer["public"] == [False] * len(BLOCKED) + [True] * len(PUBLIC)
    assert answer["embedded"] == here


def test_resolve_within_a_lookup_that_hangs_is_a_resolution_error_at_the_bound() -> None:
    release = threading.Event()

    def hanging(host: str, port: int) -> list[str]:
        release.wait(30)
        return ["93.184.216.34"]

    started = time.monotonic()
    try:
        with pytest.raises(ResolutionError, match="did not resolve within"):
            resolve_within(hanging, "slow.example", 443, timeout=0.2)
    finally:
        release.set()
    assert time.monotonic() - started < 5  # bounded: not the 30 s the lookup would take


def test_resolve_within_passes_a_quick_answer_and_its_errors_through() -> None:
    assert resolve_within(lambda h, p: ["1.1.1.1"], "quick.example", 443, timeout=5) == ["1.1.1.1"]

    def failing(host: str, port: int) -> list[str]:
        raise ResolutionError("no such host")

    with pytest.raises(ResolutionError, match="no such host"):
        resolve_within(failing, "missing.example", 443, timeout=5)


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
