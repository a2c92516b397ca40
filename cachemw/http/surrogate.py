"""Cache-Control fields aimed at gateway caches only (RFC 9213; W3C Edge Architecture 1.0).

A reverse-proxy cache such as cachemw is the target of ``CDN-Cache-Control`` (RFC 9213) and
of ``Surrogate-Control`` (Edge Architecture §3). When such a field is present, it replaces
Cache-Control for the gateway's own storage and freshness decisions (RFC 9213 §2.1), while
clients still see Cache-Control. Surrogate-Control is consumed by the surrogate and removed
before the response goes on (Edge Architecture §3); CDN-Cache-Control may be forwarded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cachemw.http.cache_control import format_cache_control
from cachemw.http.targeted import parse_targeted_cache_control

__all__ = ["CONSUMED_FIELDS", "TARGETED_FIELDS", "TargetedControl", "targeted_cache_control"]

# In precedence order: the most specific field a gateway implements wins (RFC 9213 §2.1).
TARGETED_FIELDS = (b"cdn-cache-control", b"surrogate-control")
CONSUMED_FIELDS = frozenset((b"surrogate-control",))


@dataclass(frozen=True, slots=True)
class TargetedControl:
    """What replaces Cache-Control for this gateway."""

    lines: tuple[bytes, ...]  # the directives, in Cache-Control syntax
    # RFC 9213 §2.1: a valid CDN-Cache-Control is used instead of Cache-Control *and*
    # Expires. Surrogate-Control (Edge Architecture §3) replaces Cache-Control only.
    replaces_expires: bool


def _untargeted(value: bytes) -> bytes:
    # Edge Architecture §3: ``directive[=value][;device-token]``; cachemw is every device.
    return b", ".join(part.split(b";", 1)[0].strip() for part in value.split(b","))


def targeted_cache_control(headers: Iterable[tuple[bytes, bytes]]) -> TargetedControl | None:
    """The field that replaces Cache-Control for this gateway, or ``None`` if there is none.

    CDN-Cache-Control is a Structured Field Dictionary (RFC 8941): one that is invalid or
    empty counts as absent (RFC 9213 §2.1), so Surrogate-Control or Cache-Control applies.
    """
    found: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        if name in TARGETED_FIELDS:
            found.setdefault(name, []).append(value)
    cdn_lines = found.get(b"cdn-cache-control")
    if cdn_lines is not None:
        directives = parse_targeted_cache_control(cdn_lines)
        if directives is not None:
            return TargetedControl((format_cache_control(directives),), replaces_expires=True)
    surrogate_lines = found.get(b"surrogate-control")
    if surrogate_lines is not None:
        return TargetedControl(
            tuple(_untargeted(line) for line in surrogate_lines), replaces_expires=False
        )
    return None
