"""The delivery address guard (SPEC section 7): resolve a receiver's host once and refuse
any address that is not globally routable, in its IPv4 and IPv6 forms."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

# IPv6 prefixes that carry an IPv4 address, or lead somewhere that is not the public internet.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_ULA = ipaddress.ip_network("fc00::/7")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class BlockedTargetError(Exception):
    """The host resolves to an address that deliveries may not reach."""


class ResolutionError(Exception):
    """The host does not resolve."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host:port (TCP)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionError(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]
    return None


def is_public(address: IPAddress) -> bool:
    """True only for an address on the public internet."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        if address in _ULA:
            return False
    elif address in _CGNAT:
        return False
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def _loopback(host: str, port: int, resolver: Resolver) -> str:
    if host.lower() == "localhost":
        addresses = [ipaddress.ip_address(a) for a in resolver(host, port)]
    else:
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            raise BlockedTargetError(f"{host}: only loopback receivers are allowed on this stack") from None
    if not addresses or not all(a.is_loopback for a in addresses):
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
    and no other name is looked up.
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
    parsed = [ipaddress.ip_address(a) for a in addresses]
    if not allow_private:
        blocked = [str(a) for a in parsed if not is_public(a)]
        if blocked:
            raise BlockedTargetError(f"{host} resolves to a non-public address ({', '.join(blocked)})")
    return str(parsed[0])
