"""Network grants: parsing them, and deciding whether a host and its addresses may be reached.

A plugin's manifest lists grants as ``host``, ``host:port``, ``*.domain`` (``fnmatch`` pattern),
``[v6]:port``, a literal address (``10.0.0.5``, ``::1``) or ``*`` (any *public* host; ``*:443``
is any public host on port 443). Two steps decide a connection, and the egress proxy runs both,
resolving names itself in between:

1. **the name**: some grant must cover the requested host and port;
2. **the address** each name resolved to: a public address is fine; a non-public one needs a
   grant that names it. Loopback, unspecified (``0.0.0.0/8``, ``::``) and cloud-metadata addresses
   are the server's own machine and its credentials: only a grant of that *literal address*
   reaches them, never a name (a name's DNS is not the admin's to vouch for: it may be rebound).
   Other private ranges (RFC 1918, CGNAT, link-local, unique-local, multicast, reserved) need a
   literal address or the *exact* name (``nas.lan``), never a pattern or ``*``.

IPv4 addresses embedded in IPv6 ones (``::ffff:127.0.0.1``, ``::127.0.0.1``, 6to4, NAT64) are
judged by the IPv4 address they carry.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "LITERAL_ONLY",
    "Address",
    "Grant",
    "address_class",
    "address_refusal",
    "literal_address",
    "name_refusal",
    "normalize_host",
    "parse_grant",
    "parse_grants",
    "plain_address",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254")
)
LITERAL_ONLY = frozenset({"loopback", "unspecified", "cloud metadata"})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPAT = ipaddress.ip_network("::/96")
_NAME = re.compile(r"[a-z0-9_*?-]+(\.[a-z0-9_*?-]+)*")


@dataclass(frozen=True, slots=True)
class Grant:
    """One parsed grant: ``host`` is ``*``, a lower-case name or pattern, or a literal address."""

    host: str
    port: int | None = None  # None: any port
    address: Address | None = None  # set for a literal address grant

    @property
    def any_public(self) -> bool:
        """``*``: any public host."""
        return self.host == "*"

    @property
    def exact_name(self) -> bool:
        """A single host name (no pattern, no address): it may reach private addresses."""
        return self.address is None and not any(c in self.host for c in "*?[")

    def covers_port(self, port: int) -> bool:
        """Whether the grant allows ``port``."""
        return self.port is None or self.port == port

    def covers_host(self, host: str) -> bool:
        """Whether the grant names ``host`` (normalised); ``*`` names nothing."""
        if self.any_public:
            return False
        if self.address is not None:
            return literal_address(host) == self.address
        return fnmatch.fnmatchcase(host, self.host)


def normalize_host(host: str) -> str:
    """Lower case, no IPv6 brackets, no trailing dot."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host[:-1] if host.endswith(".") and not host.endswith("..") else host


def plain_address(address: Address) -> Address:
    """An IPv4-mapped IPv6 address as the IPv4 address it is (one form to compare and connect)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def literal_address(host: str) -> Address | None:
    """``host`` as an address if it is written as one (strict: ``127.1`` is not)."""
    try:
        return plain_address(ipaddress.ip_address(normalize_host(host)))
    except ValueError:
        return None


def parse_grant(text: str) -> Grant:
    """Parse one grant; raise ValueError for one that is malformed (a bad port, a bad name)."""
    raw = text.strip().lower()
    port_text: str | None = None
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"malformed network grant {text!r}")
        port_text = rest[1:] if rest else None
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
    else:
        host = raw  # a name, '*', or a bare IPv6 address (no port)
    port = None
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"network grant {text!r} has an invalid port")
        port = int(port_text)
    host = normalize_host(host)
    address = literal_address(host)
    if address is not None:
        return Grant(str(address), port, address)
    if host != "*" and not _NAME.fullmatch(host):
        raise ValueError(f"network grant {text!r} is not a host name, pattern or address")
    return Grant(host, port)


def parse_grants(texts: Iterable[str]) -> tuple[list[Grant], list[str]]:
    """Parse grants; return the valid ones and the texts that are not (they grant nothing)."""
    grants: list[Grant] = []
    invalid: list[str] = []
    for text in texts:
        try:
            grants.append(parse_grant(text))
        except ValueError:
            invalid.append(text)
    return grants, invalid


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _COMPAT and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_class(address: Address) -> str | None:
    """What kind of non-public address this is (``loopback``, ``private``...), None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and (kind := address_class(inner)) is not None:
            return kind
    if address in METADATA:
        return "cloud metadata"
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified or (
        isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK
    ):
        return "unspecified"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "CGNAT"
    if not address.is_global:
        return "private"
    return None


def name_refusal(grants: list[Grant], host: str, port: int) -> str | None:
    """Why no grant covers ``host:port`` (None when one does)."""
    if any(g.covers_port(port) and (g.any_public or g.covers_host(host)) for g in grants):
        return None
    if any(g.covers_host(host) or g.any_public for g in grants):
        return f"port {port} is not granted for {host}"
    return f"no network grant covers {host}"


def address_refusal(grants: list[Grant], host: str, port: int, address: Address) -> str | None:
    """Why ``host:port``, resolved to ``address``, may not be reached (None when it may).

    Call it only after :func:`name_refusal` allowed the name.
    """
    address = plain_address(address)
    if any(g.address == address and g.covers_port(port) for g in grants):
        return None  # the admin granted this very address
    kind = address_class(address)
    if kind is None:
        return None
    what = f"the private address {address}" + ("" if kind == "private" else f" ({kind})")
    if literal_address(host) != address:
        what = f"{host} resolves to {what}"
    if kind in LITERAL_ONLY:
        return f"{what}, reached only by a grant of that literal address"
    if any(g.exact_name and g.covers_port(port) and g.covers_host(host) for g in grants):
        return None
    return f"{what}, reached only by a grant of that exact name or address"
