"""The delivery address guard: resolve a receiver's host once, within a bound, and refuse any
address that is not on the public internet, in its IPv4 and IPv6 forms.

The guard decides by its own tables (below), taken from IANA's special-purpose address
registries, never by `ipaddress`'s `is_private` / `is_global`: Python 3.12.4 and 3.13
changed those tables (3.11 calls 192.0.0.8 global, 3.13 does not; 3.13 calls 2001:20::/28
global, 3.11 does not), and the guard must answer the same on every Python that runs it.

- IPv4: refused when in any of `_IPV4_REFUSED`.
- IPv6: only global unicast (2000::/3) can be public, and within it the prefixes of
  `_IPV6_REFUSED` are refused. Addresses that carry an IPv4 address are judged by it:
  IPv4-mapped (::ffff:0:0/96), the well-known NAT64 prefix (64:ff9b::/96) and 6to4
  (2002::/16). The local-use NAT64 prefix 64:ff9b:1::/48 leads to networks of the
  operator's choosing and is refused whatever it embeds; `embedded_ipv4` reads its IPv4
  address where RFC 6052 places it for a /48 prefix (bits 48-63 and 72-87), for logs.
- A scoped address (fe80::1%eth0) is refused.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

_IPV4_REFUSED = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata services)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the limited broadcast address
    )
)
_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_IPV6_REFUSED = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments: Teredo, benchmarking, ORCHID, ...
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
    )
)
# Outside 2000::/3, hence refused, but named for the reader: ::/8 (unspecified, loopback,
# IPv4-compatible and -translated), 64:ff9b:1::/48 (local-use NAT64), 100::/64 (discard),
# 5f00::/16 (SRv6), fc00::/7 (unique local), fe80::/10 (link-local), fec0::/10 (site-local),
# ff00::/8 (multicast).
_LOOPBACK = (ipaddress.IPv4Network("127.0.0.0/8"), ipaddress.IPv6Network("::1/128"))  # loopback_only's
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


class BlockedTargetError(Exception):
    """The host resolves to an address that deliveries may not reach."""


class ResolutionError(Exception):
    """The host does not resolve (or not within the bound)."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host:port (TCP)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionError(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve_within(resolver: Resolver, host: str, port: int, timeout: float) -> Sequence[str]:
    """`resolver(host, port)`, or ResolutionError once `timeout` seconds have passed.

    `getaddrinfo` has no timeout of its own, so the lookup runs on a thread of its own; one
    that outlives the bound finishes in the background (the system resolver gives up by
    itself) and its answer is dropped."""
    outcome: list[Sequence[str] | BaseException] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(resolver(host, port))
        except BaseException as exc:  # handed to the caller below
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="resolve", daemon=True).start()
    if not done.wait(max(timeout, 0.0)):
        raise ResolutionError(f"{host} did not resolve within {timeout:g} s")
    answer = outcome[0]
    if isinstance(answer, BaseException):
        raise answer
    return answer


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, read where its prefix's RFC puts it."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    value = int(address)
    if address in _MAPPED or address in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    if address in _NAT64_LOCAL:  # RFC 6052 for a /48: bits 48-63, then (after octet u) 72-87
        high = (value >> 64) & 0xFFFF
        low = (value >> 40) & 0xFFFF
        return ipaddress.IPv4Address((high << 16) | low)
    return None


def is_public(address: IPAddress) -> bool:
    """True only for an address on the public internet (see the module's tables)."""
    if isinstance(address, ipaddress.IPv4Address):
        return not any(address in net for net in _IPV4_REFUSED)
    if address.scope_id or address in _NAT64_LOCAL:
        return False
    embedded = embedded_ipv4(address)
    if embedded is not None:
        return is_public(embedded)
    return address in _IPV6_GLOBAL_UNICAST and not any(address in net for net in _IPV6_REFUSED)


def describe(address: IPAddress) -> str:
    """An address for a log line, with the IPv4 address it carries, if any."""
    embedded = embedded_ipv4(address)
    return f"{address} (carrying {embedded})" if embedded is not None else str(address)


def _loopback(host: str, port: int, resolver: Resolver) -> str:
    if host.lower() == "localhost":
        addresses = [ipaddress.ip_address(a) for a in resolver(host, port)]
    else:
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            raise BlockedTargetError(f"{host}: only loopback receivers are allowed on this stack") from None
    if not addresses or not all(any(a in net for net in _LOOPBACK) for a in addresses):
        raise BlockedTargetError(f"{host}: only loopback receivers are allowed on this stack")
    return str(addresses[0])


def vet(
    host: str,
    port: int,
    resolver: Resolver = system_resolver,
    *,
    allow_private: bool = False,
    loopback_only: bool = False,
) -> str:
    """Resolve `host` once and return the address to connect to.

    Raises BlockedTargetError if any resolved address is not public (unless
    `allow_private`), and ResolutionError if the host does not resolve. With
    `loopback_only` (test stacks), only loopback addresses and `localhost` are allowed,
    and no other name is looked up. The errors' messages name the addresses, for logs;
    what a receiver's owner is shown must not (it would map internal names).
    """
    literal = host.strip("[]")
    if loopback_only:
        return _loopback(literal, port, resolver)
    try:
        addresses: Sequence[str] = [str(ipaddress.ip_address(literal))]
    except ValueError:
        addresses = resolver(host, port)
    if not addresses:
        raise ResolutionError(f"{host} has no addresses")
    try:
        parsed = [ipaddress.ip_address(a) for a in addresses]
    except ValueError:
        raise ResolutionError(f"{host} resolved to something that is not an address") from None
    if not allow_private:
        blocked = [describe(a) for a in parsed if not is_public(a)]
        if blocked:
            raise BlockedTargetError(f"{host} resolves to a non-public address ({', '.join(blocked)})")
    return str(parsed[0])
