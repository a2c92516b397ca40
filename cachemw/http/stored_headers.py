"""Which header fields a cache stores, and how a 304 updates them (RFC 9111 §3.1, §3.2, §4.3.4).

Headers are ASGI-style ``list[tuple[bytes, bytes]]``; order and duplicate lines are kept
(Set-Cookie, Link, ... must stay separate lines). Names are matched case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "UNSTORED_FIELDS",
    "connection_listed_fields",
    "freshen_header_fields",
    "storable_header_fields",
]

# RFC 9111 §3.1: connection-specific fields (RFC 9110 §7.6.1) are never stored; the proxy
# authentication fields concern the hop that produced them, not the stored response.
UNSTORED_FIELDS = frozenset(
    (
        b"connection",
        b"proxy-connection",
        b"keep-alive",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authentication-info",
        b"proxy-authorization",
    )
)
# RFC 9111 §3.2: a 304 never changes the stored content's length.
_NOT_UPDATED_FIELDS = UNSTORED_FIELDS | {b"content-length"}
_OWS = b" \t"


def connection_listed_fields(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    """The field names the Connection field lists (lower-case): connection-specific fields
    that a cache neither stores nor updates (RFC 9111 §3.1, §3.2)."""
    listed: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            listed.update(part.strip(_OWS).lower() for part in value.split(b","))
    listed.discard(b"")
    return listed


def storable_header_fields(
    headers: list[tuple[bytes, bytes]], *, strip_fields: tuple[str, ...] = ()
) -> list[tuple[bytes, bytes]]:
    """The lines of ``headers`` a cache may store, in order.

    Drops connection-specific fields and those the Connection field lists (§3.1), and
    ``strip_fields`` (``StoreDecision.strip_fields``: qualified private/no-cache names).
    """
    excluded = connection_listed_fields(headers)
    excluded.update(UNSTORED_FIELDS)
    excluded.update(name.lower().encode("latin-1", "replace") for name in strip_fields)
    return [(name, value) for name, value in headers if name.lower() not in excluded]


def freshen_header_fields(
    stored: list[tuple[bytes, bytes]], validation: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """Stored header lines updated by a 304 (or HEAD) response's lines (§3.2, §4.3.4).

    Each field present in ``validation`` replaces every stored line of that name (all its
    lines are kept, in order); Content-Length and connection-specific fields are not taken.
    """
    excluded = _NOT_UPDATED_FIELDS | connection_listed_fields(validation)
    updates = [(name, value) for name, value in validation if name.lower() not in excluded]
    if not updates:
        return list(stored)
    replaced = {name.lower() for name, _ in updates}
    kept = [(name, value) for name, value in stored if name.lower() not in replaced]
    return kept + updates
