"""``CacheMiddleware``: a pure-ASGI RFC 9111 shared cache in front of an app, on Valkey.

    app = CacheMiddleware(app, valkey=Valkey.from_url(url), settings=CacheSettings(...))

GET/HEAD go through a per-request :class:`~cachemw.cache.responder.CacheResponder`; unsafe
methods pass through and, on success, invalidate the target URI (RFC 9111 §4.4). Any Valkey
failure makes the cache step aside: the app answers, never a 5xx from the cache.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cachemw.cache.coalescing import FillCoordinator
from cachemw.cache.entry import CachedResponse, EntryCodec
from cachemw.cache.fill import Fill
from cachemw.cache.invalidation import keys_invalidated_by
from cachemw.cache.near import NearCache
from cachemw.cache.request import CacheRequest, KeyMemo, field_kinds
from cachemw.cache.responder import CacheResponder, Found
from cachemw.cache.settings import CacheSettings
from cachemw.cache.store import FEATURE, CacheStore, Lookup
from cachemw.http.cache_control import CacheControl, parse_cache_control
from cachemw.http.cache_status import ForwardReason, format_cache_status
from cachemw.http.dates import format_age, parse_http_date
from cachemw.http.freshness import (
    ServeDecision,
    corrected_initial_age,
    freshness_lifetime,
    retention_seconds,
    serve_decision,
)
from cachemw.http.keys import variant_key
from cachemw.http.policy import NOT_MODIFIED_FIELDS, not_modified_headers
from cachemw.http.surrogate import CONSUMED_FIELDS
from cachemw.http.validators import PreconditionOutcome, evaluate_preconditions, parse_entity_tag
from cachemw.metrics import Metrics
from cachemw.valkey import Valkey, ValkeyError
from cachemw.valkey.tracking import KeyTracking

__all__ = ["CacheMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# RFC 9110 §9.2.1: safe methods never invalidate.
_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))
_MEMO_LIMIT = 4096
# Counters (``cachemw_cache_<event>_total``); label values are fixed by cachemw.
METRIC_HELP = {
    "hit": "Fresh stored responses served",
    "stale": "Stale stored responses served (max-stale, stale-while-revalidate, stale-if-error)",
    "miss": "Requests that went to the app for a fill",
    "revalidated": "Stale entries freshened by a 304 from the app",
    "coalesced": "Requests served from another request's fill instead of calling the app",
    "bypass": "Requests the cache stayed away from, by reason",
    "store_refused": "Responses not stored, by reason",
    "errors": "Valkey or app failures the cache absorbed, by operation",
    "invalidated": "Invalidations after unsafe methods",
    "refresh_skipped": "Background refreshes skipped at the concurrency bound",
}
_VARY_MEMO_LIMIT = 65536


class CacheMiddleware:
    """An RFC 9111 shared response cache on Valkey (standalone or Cluster)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        valkey: Valkey,
        settings: CacheSettings | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(valkey, Valkey):
            raise ValueError(f"valkey must be a cachemw.valkey.Valkey, got {valkey!r}")
        self.app = app
        self.settings = settings = settings or CacheSettings()
        self.metrics = metrics
        if metrics is not None:
            for event, help_text in METRIC_HELP.items():
                metrics.describe(f"cachemw_cache_{event}_total", help_text)
        self.clock = clock
        near: NearCache[Lookup] | None = None
        self.key_tracking: KeyTracking | None = None
        if settings.near_cache_entries:
            near = NearCache(
                max_entries=settings.near_cache_entries,
                max_bytes=settings.near_cache_max_bytes,
                ttl=settings.near_cache_ttl,
            )
            valkey.breaker.on_state_change(near.breaker_changed)
            prefix = f"{valkey.keyspace.prefix}:{FEATURE}:"
            self.key_tracking = KeyTracking(valkey, prefix, near)
        self.store = CacheStore(valkey, max_variants=settings.max_variants, near=near)
        self.codec = EntryCodec(
            compress_min_size=settings.compress_min_size, signing_key=settings.signing_key
        )
        self.coordinator = FillCoordinator(self.store, coalesce_wait=settings.coalesce_wait)
        self.lock_ttl_ms = int(settings.lock_ttl * 1000)
        # A cache adds its own Age and Cache-Status to a 304 (RFC 9111 §4.2.3, RFC 9211).
        self.not_modified_fields = NOT_MODIFIED_FIELDS | {b"age", b"cache-status"}
        self.field_kinds = field_kinds(settings)
        self._default_spec = ",".join(settings.keyed_headers).encode("latin-1")
        self._empty_variant = variant_key((), []).decode("ascii")
        # Bounded memos of pure functions and of each URL's last seen Vary spec.
        self._vary_specs: dict[str, bytes] = {}
        self._spec_names: dict[bytes, tuple[str, ...]] = {}
        self._cache_controls: dict[bytes, CacheControl] = {}
        self._initial_ages: dict[tuple[bytes | None, bytes | None, float, float], float] = {}
        self.primary_keys: KeyMemo = {}
        self.hit_status_prefix = format_cache_status(cache_name=settings.cache_name, hit=True)
        self._background: set[asyncio.Task[None]] = set()
        self._refreshing: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.key_tracking is not None:
            self.key_tracking.start()  # lazily: needs the server's event loop
        method = scope["method"]
        if method in {"GET", "HEAD"}:
            await CacheResponder(self, scope, receive, send).run()
        elif method in _SAFE_METHODS:
            await self.app(scope, receive, send)
        else:
            await self._invalidating(scope, receive, send)

    # -- shared helpers the per-request objects use ------------------------------------------

    def count(self, event: str, **labels: str) -> None:
        if self.metrics is not None:
            self.metrics.incr(f"cachemw_cache_{event}_total", 1, **labels)

    def remembered_vary_spec(self, primary_key: str) -> bytes:
        return self._vary_specs.get(primary_key, self._default_spec)

    def remember_vary_spec(self, primary_key: str, spec: bytes) -> None:
        specs = self._vary_specs
        if spec == self._default_spec:
            specs.pop(primary_key, None)
            return
        if len(specs) >= _VARY_MEMO_LIMIT:
            specs.pop(next(iter(specs)))
        specs[primary_key] = spec

    def variant_for(self, spec: bytes, headers: list[tuple[bytes, bytes]]) -> str:
        """The secondary cache key of a request under a URL's Vary spec (RFC 9111 §4.1)."""
        if not spec:
            return self._empty_variant
        names = self._spec_names.get(spec)
        if names is None:
            names = tuple(spec.decode("latin-1").split(","))
            if len(self._spec_names) >= _MEMO_LIMIT:
                self._spec_names.clear()
            self._spec_names[spec] = names
        return variant_key(names, headers).decode("ascii")

    def response_cache_control(self, entry: CachedResponse) -> CacheControl:
        raw = entry.cache_control
        parsed = self._cache_controls.get(raw)
        if parsed is None:
            parsed = parse_cache_control((raw,))
            if len(self._cache_controls) >= _MEMO_LIMIT:
                self._cache_controls.clear()
            self._cache_controls[raw] = parsed
        return parsed

    def age(self, entry: CachedResponse, now: float) -> float:
        """Current age (RFC 9111 §4.2.3). The corrected initial age depends on the entry
        alone, so it is computed once per stored response, not parsed again on every hit."""
        facts = (entry.age, entry.date, entry.request_time, entry.response_time)
        initial = self._initial_ages.get(facts)
        if initial is None:
            initial = corrected_initial_age(
                age_header=entry.age,
                date_header=entry.date,
                request_time=entry.request_time,
                response_time=entry.response_time,
            )
            if len(self._initial_ages) >= _MEMO_LIMIT:
                self._initial_ages.clear()
            self._initial_ages[facts] = initial
        return initial + max(0.0, now - entry.response_time)

    def lifetime(self, entry: CachedResponse, response_cc: CacheControl) -> float:
        return freshness_lifetime(
            response_cc=response_cc,
            expires=entry.expires,
            date=entry.date,
            response_time=entry.response_time,
            default_ttl=entry.default_ttl,
        )

    def assess(
        self, request: CacheRequest, entry: CachedResponse, now: float
    ) -> tuple[ServeDecision, float]:
        """May ``entry`` answer ``request`` now (RFC 9111 §4), and its current age."""
        response_cc = self.response_cache_control(entry)
        age = self.age(entry, now)
        decision = serve_decision(
            response_cc=response_cc,
            request_cc=request.request_cc,
            freshness_lifetime=self.lifetime(entry, response_cc),
            current_age=age,
            pragma_no_cache=request.pragma_no_cache,
            client_can_force_revalidation=self.settings.honor_client_no_cache,
        )
        return decision, age

    def serve_decision(
        self, request: CacheRequest, entry: CachedResponse, now: float
    ) -> ServeDecision:
        return self.assess(request, entry, now)[0]

    def retention(self, entry: CachedResponse, *, now: float) -> float:
        response_cc = self.response_cache_control(entry)
        return retention_seconds(
            freshness_lifetime=self.lifetime(entry, response_cc),
            current_age=self.age(entry, now),
            response_cc=response_cc,
            has_validator=bool(entry.etag or entry.last_modified),
            revalidation_grace=self.settings.revalidation_grace,
        )

    # -- responses -------------------------------------------------------------------------

    async def serve_entry(
        self,
        request: CacheRequest,
        entry: CachedResponse,
        send: Send,
        *,
        now: float,
        cache_status: bytes,
        age: float | None = None,
    ) -> None:
        """Replay a stored response: bytes out, plus Age and Cache-Status.

        The client's own preconditions are answered from the entry (RFC 9110 §13.2.2).
        """
        if age is None:
            age = self.age(entry, now)
        extra = [(b"age", format_age(age)), (b"cache-status", cache_status)]
        conditions = request.conditions
        if conditions is not None and 200 <= entry.status < 300:
            outcome = evaluate_preconditions(
                conditions,
                method=request.method,
                etag=parse_entity_tag(entry.etag) if entry.etag else None,
                last_modified=parse_http_date(entry.last_modified) if entry.last_modified else None,
                now=now,
            )
            if outcome is PreconditionOutcome.NOT_MODIFIED:
                headers = not_modified_headers(entry.headers, keep=self.not_modified_fields)
                await _send_response(send, 304, headers + extra, b"")
                return
            if outcome is PreconditionOutcome.PRECONDITION_FAILED:
                await _send_response(send, 412, [(b"content-length", b"0"), extra[1]], b"")
                return
        body = b"" if request.method == "HEAD" else entry.body
        await _send_response(send, entry.status, entry.headers + extra, body)

    async def gateway_timeout(self, send: Send) -> None:
        """RFC 9111 §5.2.1.7: only-if-cached and nothing usable stored."""
        status = format_cache_status(cache_name=self.settings.cache_name, detail="only-if-cached")
        headers = [(b"content-length", b"0"), (b"cache-status", status)]
        await _send_response(send, 504, headers, b"")

    async def pass_through(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        fwd: ForwardReason,
        detail: str | None,
    ) -> None:
        """Let the app answer without storing; add Cache-Status, drop the tag field."""
        status = (
            b"cache-status",
            format_cache_status(cache_name=self.settings.cache_name, fwd=fwd, detail=detail),
        )
        dropped = CONSUMED_FIELDS | {self.settings.tag_header.encode()}

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0] not in dropped]
                headers.append(status)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_status)

    # -- background refresh (stale-while-revalidate, XFetch) ---------------------------------

    def spawn_refresh(
        self, scope: Scope, request: CacheRequest, found: Found, entry: CachedResponse
    ) -> None:
        """Refresh ``entry`` once in the background; bounded per process."""
        flight = self.store.lock_key(request.primary_key, found.variant)
        if flight in self._refreshing:
            return
        if len(self._background) >= self.settings.max_background_refreshes:
            self.count("refresh_skipped")
            return
        self._refreshing.add(flight)
        task = asyncio.create_task(self._refresh(dict(scope), request, found, entry, flight))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh(
        self,
        scope: dict[str, Any],
        request: CacheRequest,
        found: Found,
        entry: CachedResponse,
        flight: str,
    ) -> None:
        try:
            attempt = await self.store.acquire_lock(
                request.primary_key, found.variant, self.lock_ttl_ms, seen_fence=found.fence
            )
            if attempt.token is None:
                return  # another process refreshes it, or already did
            fill = Fill(
                self,
                request,
                scope,
                found=found,
                token=attempt.token,
                stale=entry,
                decision=None,
                fwd=ForwardReason.STALE,
            )
            await fill.run(_background_receive(), None)
        except ValkeyError:
            self.count("errors", operation="refresh")
        except Exception:
            # The app failed while refreshing: the stale entry stays until it expires.
            self.count("errors", operation="refresh-app")
        finally:
            self._refreshing.discard(flight)

    # -- unsafe methods (RFC 9111 §4.4) ------------------------------------------------------

    async def _invalidating(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_invalidating(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 400:
                await self._invalidate_after_unsafe(scope, message.get("headers", ()))
            await send(message)

        await self.app(scope, receive, send_invalidating)

    async def _invalidate_after_unsafe(
        self, scope: Scope, headers: list[tuple[bytes, bytes]]
    ) -> None:
        # Before the client sees the success, so its next request cannot read the old entry.
        keys = keys_invalidated_by(scope, headers, normalize_query=self.settings.normalize_query)
        try:
            await self.store.unlink_urls(keys)
        except ValkeyError:
            self.count("errors", operation="invalidate")
        else:
            self.count("invalidated", reason="unsafe-method")

    async def aclose(self) -> None:
        """Stop background refreshes, the wake-up subscription and key tracking."""
        if self.key_tracking is not None:
            await self.key_tracking.aclose()
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.coordinator.aclose()


async def _send_response(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _background_receive() -> Receive:
    sent = False
    never = asyncio.Event()

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()  # no client: the refresh is never disconnected
        return {"type": "http.disconnect"}

    return receive
