"""Turning an app's response into an entry, and an entry back into a response.

The HTTP rules (storability, freshness, age, the 304 field set) come from ``cachemw.http``;
this module only moves header lists around.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from cachemw.cache.entry import CachedResponse
from cachemw.cache.request import CacheRequest
from cachemw.cache.settings import CacheSettings
from cachemw.http.cache_control import CacheControl, parse_cache_control
from cachemw.http.dates import MAX_DELTA_SECONDS, format_http_date, parse_age
from cachemw.http.freshness import (
    StoreDecision,
    has_explicit_freshness,
    is_storable,
)
from cachemw.http.stored_headers import UNSTORED_FIELDS, connection_listed_fields
from cachemw.http.surrogate import CONSUMED_FIELDS, targeted_cache_control
from cachemw.http.vary import parse_vary

__all__ = [
    "ResponseFacts",
    "build_entry",
    "freshen_entry",
    "response_facts",
]

# RFC 9111 §3.1 (the core's list: connection-specific and Proxy-Auth* fields), plus Trailer;
# Age is recomputed on every hit (§4.2.3) and kept apart in the entry.
_NOT_STORED = UNSTORED_FIELDS | {b"trailer", b"age"}
# RFC 9111 §3.2: fields a 304 must not update in the stored response (they describe the
# stored content, which the 304 does not carry).
# ETag too: the stored body is what it validates, whatever a 304 for another selected
# representation says (§4.3.4 selects stored responses by their validator).
_NOT_UPDATED_BY_304 = frozenset(
    (b"content-length", b"content-encoding", b"content-range", b"content-md5", b"etag")
)
# An Age the cache cannot trust makes the response stale on arrival (never fresher than it
# is): the maximum delta-seconds (RFC 9111 §1.2.2).
_UNTRUSTED_AGE = b"%d" % MAX_DELTA_SECONDS
# Statuses cachemw's own rate limiter and load shedding send: per-client, never shareable.
_NEVER_STORED_STATUSES = frozenset((429, 503))


@dataclass(slots=True)
class ResponseFacts:
    """The cache-relevant parts of an app response's start message."""

    decision: StoreDecision | None
    refusal: str | None
    response_cc: CacheControl
    vary: tuple[str, ...]
    tags: tuple[str, ...]
    # The Cache-Control this gateway obeys: CDN-Cache-Control/Surrogate-Control if sent.
    cache_control: bytes
    # A valid CDN-Cache-Control was sent: Expires plays no part in freshness (RFC 9213).
    expires_replaced: bool = False


def response_facts(
    request: CacheRequest,
    status: int,
    headers: list[tuple[bytes, bytes]],
    settings: CacheSettings,
) -> ResponseFacts:
    """Whether (and how) this response may be stored for ``request`` (RFC 9111 §3)."""
    cache_control: list[bytes] = []
    vary_lines: list[bytes] = []
    tag_lines: list[bytes] = []
    has_expires = has_set_cookie = False
    tag_header = settings.tag_header.encode()
    size = 0
    for name, value in headers:
        size += len(name) + len(value)
        if name == b"cache-control":
            cache_control.append(value)
        elif name == b"vary":
            vary_lines.append(value)
        elif name == b"expires":
            has_expires = True
        elif name == b"set-cookie":
            has_set_cookie = True
        elif name == tag_header:
            tag_lines.append(value)
    targeted = targeted_cache_control(headers)
    obeyed: Sequence[bytes] = cache_control if targeted is None else targeted.lines
    if targeted is not None and targeted.replaces_expires:
        has_expires = False
    response_cc = parse_cache_control(obeyed)
    vary = parse_vary(vary_lines)
    tags = request.route.tags + _parse_tags(tag_lines)
    refusal: str | None = None
    decision: StoreDecision | None = None
    if status in _NEVER_STORED_STATUSES:
        refusal = "status"
    elif len(headers) > settings.max_header_count or size > settings.max_header_bytes:
        refusal = "headers-too-large"
    else:
        explicit = has_explicit_freshness(response_cc=response_cc, has_expires=has_expires)
        decision = is_storable(
            method="GET" if request.method == "HEAD" else request.method,
            status=status,
            request_cc=request.request_cc,
            response_cc=response_cc,
            has_authorization=request.has_authorization,
            has_set_cookie=has_set_cookie,
            vary=vary,
            has_explicit_freshness_or_default=explicit or request.route.default_ttl is not None,
            allow_set_cookie=request.route.allow_set_cookie,
        )
        if not decision.storable:
            refusal = decision.reason.value
    keyed = tuple(name for name in settings.keyed_headers if name not in (vary or ()))
    return ResponseFacts(
        decision=decision,
        refusal=refusal,
        response_cc=response_cc,
        vary=(vary or ()) + keyed,
        tags=tuple(dict.fromkeys(tags)),
        cache_control=b", ".join(obeyed),
        expires_replaced=targeted is not None and targeted.replaces_expires,
    )


def _parse_tags(lines: list[bytes]) -> tuple[str, ...]:
    tags: list[str] = []
    for line in lines:
        for part in line.replace(b",", b" ").split():
            if len(part) <= 256:
                tags.append(part.decode("latin-1"))
    return tuple(tags)


def client_headers(
    headers: list[tuple[bytes, bytes]], settings: CacheSettings
) -> list[tuple[bytes, bytes]]:
    """The app's headers minus the fields meant for this cache only (tags,
    Surrogate-Control), which never reach the client."""
    dropped = CONSUMED_FIELDS | {settings.tag_header.encode()}
    return [(n, v) for n, v in headers if n not in dropped]


def build_entry(
    *,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    facts: ResponseFacts,
    request_time: float,
    response_time: float,
    default_ttl: float | None,
    vary_spec: bytes,
    variant: str,
    settings: CacheSettings,
) -> CachedResponse:
    """The entry for a storable response: what a hit replays."""
    decision = facts.decision
    strip = {name.encode("latin-1") for name in decision.strip_fields} if decision else set()
    strip.add(settings.tag_header.encode())
    strip.update(CONSUMED_FIELDS)
    connection_fields = connection_listed_fields(headers)
    kept: list[tuple[bytes, bytes]] = []
    date: bytes | None = None
    age_lines: list[bytes] = []
    expires: bytes | None = None
    etag: bytes | None = None
    last_modified: bytes | None = None
    has_length = False
    for name, value in headers:
        if name in _NOT_STORED or name in strip or name in connection_fields:
            if name == b"age":
                age_lines.append(value)
            continue
        if name == b"date":
            if date is not None:
                continue  # a second Date (e.g. a server's own) is dropped, the first kept
            date = value
        elif name == b"expires":
            expires = value if expires is None else b""  # several lines: invalid (§4.2.1)
        elif name == b"etag":
            etag = value
        elif name == b"last-modified":
            last_modified = value
        elif name == b"content-length":
            has_length = True
        kept.append((name, value))
    if date is None:
        # RFC 9110 §6.6.1: a recipient with a clock adds the Date of receipt when caching.
        date = format_http_date(response_time)
        kept.append((b"date", date))
    if not has_length and status not in (204, 304) and status >= 200:
        kept.append((b"content-length", b"%d" % len(body)))
    return CachedResponse(
        status=status,
        headers=kept,
        body=body,
        request_time=request_time,
        response_time=response_time,
        tags=facts.tags,
        cache_control=facts.cache_control,
        date=date,
        age=stored_age(age_lines),
        expires=None if facts.expires_replaced else expires,
        etag=etag,
        last_modified=last_modified,
        default_ttl=default_ttl,
        origin_time=max(0.0, response_time - request_time),
        vary_spec=vary_spec,
        variant=variant,
    )


def stored_age(lines: list[bytes]) -> bytes | None:
    """The Age to keep for a response: ``None`` when absent. Several lines, a list or an
    invalid value (RFC 9111 §5.1 lets a cache ignore it) are taken as "too old to trust"."""
    if not lines:
        return None
    if len(lines) > 1 or parse_age(lines[0]) is None:
        return _UNTRUSTED_AGE
    return lines[0]


def freshen_entry(
    entry: CachedResponse,
    not_modified_headers: list[tuple[bytes, bytes]],
    *,
    request_time: float,
    response_time: float,
) -> CachedResponse:
    """RFC 9111 §4.3.4: a 304 replaces the stored fields it carries; times restart."""
    updates: dict[bytes, list[bytes]] = {}
    connection_fields = connection_listed_fields(not_modified_headers)
    for name, value in not_modified_headers:
        if (
            name in _NOT_STORED
            or name in _NOT_UPDATED_BY_304
            or name in CONSUMED_FIELDS
            or name in connection_fields
        ):
            continue
        updates.setdefault(name, []).append(value)
    kept = [(n, v) for n, v in entry.headers if n not in updates]
    kept.extend((n, v) for n, values in updates.items() for v in values)
    changes: dict[str, object] = {
        "headers": kept,
        "request_time": request_time,
        "response_time": response_time,
        "age": stored_age([v for n, v in not_modified_headers if n == b"age"]),
    }
    if b"date" in updates:
        changes["date"] = updates[b"date"][0]
    else:
        date = format_http_date(response_time)
        changes["date"] = date
        changes["headers"] = [(n, v) for n, v in kept if n != b"date"] + [(b"date", date)]
    # The fields in force after the update: the stored CDN-Cache-Control unless the 304
    # carries its own, and the 304's Surrogate-Control (consumed, so never stored).
    targeted = targeted_cache_control(
        [*kept, *((n, v) for n, v in not_modified_headers if n in CONSUMED_FIELDS)]
    )
    if targeted is not None:
        changes["cache_control"] = b", ".join(targeted.lines)
    elif b"cache-control" in updates:
        changes["cache_control"] = b", ".join(updates[b"cache-control"])
    if targeted is not None and targeted.replaces_expires:
        changes["expires"] = None
    elif b"expires" in updates:
        changes["expires"] = updates[b"expires"][0] if len(updates[b"expires"]) == 1 else b""
    if b"last-modified" in updates:
        changes["last_modified"] = updates[b"last-modified"][0]
    return msgspec.structs.replace(entry, **changes)
