"""The Cache-Status response field (RFC 9211), sans-I/O.

A value is one list member: the cache's name followed by parameters (RFC 9211 §2), e.g.
``cachemw; hit; ttl=376`` or ``cachemw; fwd=uri-miss; stored``. Callers append it as a new
field line, which RFC 9110 §5.3 makes equivalent to appending the member to an upstream
cache's list (§2: the member closest to the user comes last).
"""

from __future__ import annotations

import math
from enum import StrEnum

from cachemw.http.cache_control import is_token

__all__ = ["ForwardReason", "format_cache_status", "format_hit_status"]


class ForwardReason(StrEnum):
    """RFC 9211 §2.2 ``fwd`` values: why the request went to the next hop."""

    BYPASS = "bypass"  # configured not to use the cache for this request
    METHOD = "method"  # the request method cannot be served from cache
    URI_MISS = "uri-miss"  # nothing stored for the target URI
    VARY_MISS = "vary-miss"  # the URI is stored, but not for this request's Vary'd fields
    MISS = "miss"  # stored responses exist but none could be used (e.g. unknown version)
    REQUEST = "request"  # the request's directives forced a trip to the origin
    STALE = "stale"  # the stored response was stale and needed revalidation
    PARTIAL = "partial"


def _sf_integer(value: float) -> int:
    # RFC 8941 sf-integer: at most 15 digits; round towards zero like Age does.
    if math.isnan(value):
        return 0
    bounded = max(-999_999_999_999_999.0, min(999_999_999_999_999.0, value))
    return int(bounded)


def _detail(text: str) -> bytes:
    if is_token(text) and (text[0].isalpha() or text[0] == "*"):
        return text.encode("ascii")  # sf-token
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return b'"' + escaped.encode("ascii", "replace") + b'"'  # sf-string


def format_cache_status(
    *,
    cache_name: str = "cachemw",
    hit: bool = False,
    fwd: ForwardReason | None = None,
    fwd_status: int | None = None,
    ttl: float | None = None,
    stored: bool = False,
    collapsed: bool = False,
    detail: str | None = None,
) -> bytes:
    """One Cache-Status member, e.g. ``b"cachemw; hit; ttl=60"`` (RFC 9211 §2.1-§2.8)."""
    parts = [cache_name.encode("ascii")]
    if hit:
        parts.append(b"hit")
    if fwd is not None:
        parts.append(b"fwd=" + fwd.value.encode("ascii"))
        if fwd_status is not None:
            parts.append(b"fwd-status=%d" % fwd_status)
    if ttl is not None:
        parts.append(b"ttl=%d" % _sf_integer(ttl))
    if stored:
        parts.append(b"stored")
    if collapsed:
        parts.append(b"collapsed")
    if detail:
        parts.append(b"detail=" + _detail(detail))
    return b"; ".join(parts)


def format_hit_status(hit_prefix: bytes, ttl: float) -> bytes:
    """``format_cache_status(cache_name=..., hit=True, ttl=ttl)`` from ``hit_prefix``, that
    call's value without ttl, made once: a plain hit's member, built on every hit."""
    return b"%b; ttl=%d" % (hit_prefix, _sf_integer(ttl))
