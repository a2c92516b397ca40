"""Which client a request came from, behind any number of trusted reverse proxies. Sans-I/O.

The rule (the one every forwarding header admits, RFC 7239 §8.1 and the X-Forwarded-For
convention): only the connection's peer is known for sure. When the peer is a trusted proxy,
its forwarding header is read from the right (each proxy appends the address it saw), and the
first address that is *not* a trusted proxy is the client. Everything to the left of it was
written by the client and may be forged. With no trusted proxies, headers are ignored.

* Several lines of one header are one list, in order (RFC 9110 §5.3).
* Addresses are canonicalised so one host has one spelling: IPv4-mapped IPv6 becomes IPv4,
  case and zero-compression follow RFC 5952, zone ids (``%eth0``) and ports are dropped.
* IPv6 clients are grouped by prefix (/64 by default): one host usually owns a whole /64 and
  could otherwise take a fresh address per request.
* Total: odd or hostile input never raises; an unusable hop stops the walk at the last
  trusted proxy, so forged garbage cannot mint new identities.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ClientAddressPolicy", "canonical_address", "client_address", "forwarded_for"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ForwardingHeader = Literal["x-forwarded-for", "forwarded", "x-real-ip"]
_HEADERS: tuple[ForwardingHeader, ...] = ("x-forwarded-for", "forwarded", "x-real-ip")
_MAX_HOPS = 64  # bounds the work a huge forged header can cause
_DOTTED = frozenset("0123456789.")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientAddressPolicy:
    """How to find the client address.

    ``ClientAddressPolicy(trusted_proxies=("10.0.0.0/8",), header="forwarded")``.
    Name exactly the header your proxy sets: reading one the proxy passes through untouched
    lets clients choose their own address.
    """

    trusted_proxies: tuple[str, ...] = ()
    header: ForwardingHeader = "x-forwarded-for"
    ipv6_prefix: int = 64
    ipv4_prefix: int = 32
    networks: tuple[IPNetwork, ...] = field(init=False)

    def __post_init__(self) -> None:
        if isinstance(self.trusted_proxies, str):
            raise ValueError(
                f"trusted_proxies must be a sequence of networks, not one string "
                f"{self.trusted_proxies!r}"
            )
        networks: list[IPNetwork] = []
        for entry in self.trusted_proxies:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except (TypeError, ValueError):
                raise ValueError(
                    f"trusted_proxies entry {entry!r} is not an IP address or network "
                    "(e.g. '10.0.0.0/8', '::1')"
                ) from None
        object.__setattr__(self, "networks", tuple(networks))
        if self.header not in _HEADERS:
            raise ValueError(f"header must be one of {_HEADERS}, got {self.header!r}")
        if not 1 <= self.ipv6_prefix <= 128:
            raise ValueError(f"ipv6_prefix must be 1..128, got {self.ipv6_prefix!r}")
        if not 1 <= self.ipv4_prefix <= 32:
            raise ValueError(f"ipv4_prefix must be 1..32, got {self.ipv4_prefix!r}")

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def _parse_address(text: str) -> IPAddress | None:
    """An address from a hop as proxies write it: bare, ``v4:port``, ``[v6]:port``, zone."""
    text = text.strip().strip('"')
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]  # RFC 6874 zone id: local to the proxy, not the client
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def canonical_address(address: IPAddress, policy: ClientAddressPolicy) -> str:
    """One spelling per client: RFC 5952 text, grouped to the policy's prefix."""
    prefix = policy.ipv6_prefix if address.version == 6 else policy.ipv4_prefix
    if prefix == address.max_prefixlen:
        return str(address)
    return str(ipaddress.ip_network((address, prefix), strict=False))


def _split_quoted(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside quoted-strings (RFC 9110 §5.6.4)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def forwarded_for(values: Iterable[str]) -> list[str]:
    """The ``for=`` node of each RFC 7239 element, in order (``""`` when an element has none)."""
    nodes: list[str] = []
    for value in values:
        for element in _split_quoted(value, ","):
            node = ""
            for pair in _split_quoted(element, ";"):
                name, sep, raw = pair.partition("=")
                if sep and name.strip().lower() == "for":
                    node = raw.strip()
                    if node.startswith('"') and node.endswith('"') and len(node) >= 2:
                        node = node[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                    break
            nodes.append(node)
    return nodes


def _hops(headers: Iterable[tuple[bytes, bytes]], header: ForwardingHeader) -> list[str]:
    name = header.encode()
    values = [v.decode("latin-1") for k, v in headers if k.lower() == name]
    if header == "forwarded":
        return forwarded_for(values)
    if header == "x-real-ip":
        return values[-1:]  # one address, set by the proxy; a later line overrides
    return [hop for value in values for hop in value.split(",")]


def client_address(
    peer: str | None, headers: Iterable[tuple[bytes, bytes]], policy: ClientAddressPolicy
) -> str:
    """The canonical, grouped address of the client (``"unknown"`` without a usable peer)."""
    if peer is None:
        return "unknown"
    if not policy.networks and policy.ipv4_prefix == 32 and _DOTTED.issuperset(peer):
        return peer  # the server's own dotted-quad text: already canonical
    address = _parse_address(peer)
    if address is None:
        return peer[:64]  # not IP (a unix socket, a test client): the server's own label
    if policy.networks and policy.is_trusted(address):
        hops = _hops(headers, policy.header)
        for hop in reversed(hops[-_MAX_HOPS:]):
            parsed = _parse_address(hop)
            if parsed is None:
                break  # the last trusted proxy could not say who it talked to
            address = parsed
            if not policy.is_trusted(parsed):
                break
    return canonical_address(address, policy)
