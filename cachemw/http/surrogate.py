"""Cache-Control fields aimed at gateway caches only (RFC 9213; W3C Edge Architecture 1.0).

A reverse-proxy cache such as cachemw is the target of ``CDN-Cache-Control`` (RFC 9213) and
of ``Surrogate-Control`` (Edge Architecture §3). When such a field is present, it replaces
Cache-Control for the gateway's own storage and freshness decisions (RFC 9213 §2.1), while
clients still see Cache-Control. Surrogate-Control is consumed by the surrogate and removed
before the response goes on (Edge Architecture §3); CDN-Cache-Control may be forwarded.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CONSUMED_FIELDS", "TARGETED_FIELDS", "targeted_cache_control"]

# In precedence order: the most specific field a gateway implements wins (RFC 9213 §2.1).
TARGETED_FIELDS = (b"cdn-cache-control", b"surrogate-control")
CONSUMED_FIELDS = frozenset((b"surrogate-control",))


def _untargeted(value: bytes) -> bytes:
    # Edge Architecture §3: ``directive[=value][;device-token]``; cachemw is every device.
    return b", ".join(part.split(b";", 1)[0].strip() for part in value.split(b","))


def targeted_cache_control(headers: Iterable[tuple[bytes, bytes]]) -> list[bytes] | None:
    """The field lines that replace Cache-Control for this gateway, or ``None`` if absent."""
    found: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        if name in TARGETED_FIELDS:
            found.setdefault(name, []).append(value)
    for name in TARGETED_FIELDS:
        lines = found.get(name)
        if lines is not None:
            if name == b"surrogate-control":
                return [_untargeted(line) for line in lines]
            return lines
    return None
