"""One GET/HEAD request through the cache: look up, serve, fill or revalidate.

Created per request (per-request state never lives on the middleware). The HTTP decisions
are the sans-I/O core's (``cachemw.http``); this module sequences them with Valkey calls:

* hit: one HMGET, then bytes out (RFC 9111 §4, Age per §4.2.3, Cache-Status per RFC 9211);
* miss / stale: a single-flight fill (``coalescing``), the leader tees the app's response
  into the store; a stale entry with validators is revalidated and a 304 freshens it
  (§4.3.4); stale-while-revalidate serves stale and refreshes in the background; an origin
  failure may be answered with a stale entry (stale-if-error, RFC 5861 §4).
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from cachemw.cache.coalescing import Flight
from cachemw.cache.entry import CachedResponse
from cachemw.cache.fill import Fill
from cachemw.cache.request import CacheRequest, analyse_request
from cachemw.cache.store import Lookup
from cachemw.http.cache_status import ForwardReason, format_cache_status, format_hit_status
from cachemw.http.freshness import ServeAction, ServeDecision
from cachemw.valkey import ValkeyError

if TYPE_CHECKING:
    from cachemw.cache.middleware import CacheMiddleware, Receive, Scope, Send

__all__ = ["CacheResponder"]


class Found:
    """The outcome of a lookup: the entry (if any) and how the variant was identified."""

    __slots__ = ("entry", "fence", "hit_for_pass", "variant", "vary_miss", "vary_spec")

    def __init__(
        self,
        *,
        entry: CachedResponse | None,
        variant: str,
        vary_spec: bytes,
        vary_miss: bool,
        hit_for_pass: bool,
        fence: bytes | None,
    ) -> None:
        self.entry = entry
        self.fence = fence
        self.variant = variant
        self.vary_spec = vary_spec
        self.vary_miss = vary_miss
        self.hit_for_pass = hit_for_pass


class CacheResponder:
    """Handles one GET or HEAD request."""

    __slots__ = ("cache", "receive", "request", "retried", "scope", "send")

    def __init__(self, cache: CacheMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
        self.cache = cache
        self.scope = scope
        self.receive = receive
        self.send = send
        self.request: CacheRequest = analyse_request(
            scope, cache.settings, cache.field_kinds, cache.primary_keys
        )
        self.retried = False

    def participates(self) -> bool:
        """Whether this request may lead or join an in-process flight: a plain GET whose
        outcome other requests for the same URL can use."""
        request = self.request
        cc = request.request_cc
        return (
            request.method == "GET"
            and not request.has_range
            and not cc.no_store
            and not cc.only_if_cached
        )

    async def run(self) -> None:
        cache, request = self.cache, self.request
        if request.bypass is not None:
            cache.count("bypass", reason=request.bypass)
            await cache.pass_through(
                self.scope, self.receive, self.send, fwd=ForwardReason.BYPASS, detail=request.bypass
            )
            return
        spec = cache.remembered_vary_spec(request.primary_key)
        variant = cache.variant_for(spec, request.headers)
        if not self.participates():
            await self.run_alone(spec, variant)
            return
        coordinator = cache.coordinator
        # Requests for one URL that arrive together share one lookup and at most one fill
        # (in-process single-flight), even when Valkey is unavailable.
        flight_key = cache.store.lock_key(request.primary_key, variant)
        current = coordinator.current_flight(flight_key)
        if current is not None:
            outcome = await coordinator.follow(current)
            # Read after the wait: the leader learns whether it fills only after its lookup.
            await self.serve_collapsed(outcome, filled=current.filled)
            return
        flight = coordinator.lead(flight_key)
        shared: CachedResponse | None = None
        try:
            shared = await self.lead(flight, spec, variant)
        finally:
            coordinator.land(flight_key, flight, shared)

    async def lead(self, flight: Flight, spec: bytes, variant: str) -> CachedResponse | None:
        """The flight leader's request; returns what its followers may be served."""
        cache, request = self.cache, self.request
        try:
            found = await self.lookup(spec, variant)  # one HMGET
        except ValkeyError:
            # Fail open: the app answers; nothing is stored, the burst still shares one call.
            cache.count("errors", operation="lookup")
            flight.filled = True
            found = Found(
                entry=None,
                variant=variant,
                vary_spec=spec,
                vary_miss=False,
                hit_for_pass=False,
                fence=None,
            )
            fill = Fill(
                cache,
                request,
                self.scope,
                found=found,
                token=None,
                stale=None,
                decision=None,
                fwd=ForwardReason.MISS,
                detail="unavailable",
            )
            return await fill.run(self.receive, self.send)
        entry = found.entry
        fwd = ForwardReason.VARY_MISS if found.vary_miss else ForwardReason.URI_MISS
        if entry is None:
            if found.hit_for_pass:
                cache.count("miss")
                await cache.pass_through(
                    self.scope, self.receive, self.send, fwd=fwd, detail="hit-for-pass"
                )
                return None
            flight.filled = True
            return await self.fill(found, stale=None, decision=None, fwd=fwd)
        now = cache.clock()
        decision, age = cache.assess(request, entry, now)
        if decision.action is ServeAction.REVALIDATE:
            flight.filled = True
            fwd = ForwardReason.STALE if decision.ttl <= 0 else ForwardReason.REQUEST
            return await self.fill(found, stale=entry, decision=decision, fwd=fwd)
        await self.serve_found(found, entry, decision, now, age)
        return entry

    async def run_alone(self, spec: bytes, variant: str) -> None:
        """HEAD, Range, no-store or only-if-cached: use a stored response, never fill."""
        cache, request = self.cache, self.request
        try:
            found = await self.lookup(spec, variant)
        except ValkeyError:
            cache.count("errors", operation="lookup")
            await cache.pass_through(
                self.scope, self.receive, self.send, fwd=ForwardReason.MISS, detail="unavailable"
            )
            return
        fwd = ForwardReason.VARY_MISS if found.vary_miss else ForwardReason.URI_MISS
        entry = found.entry
        if entry is not None:
            now = cache.clock()
            decision, age = cache.assess(request, entry, now)
            if decision.action is not ServeAction.REVALIDATE:
                await self.serve_found(found, entry, decision, now, age)
                return
            fwd = ForwardReason.STALE if decision.ttl <= 0 else ForwardReason.REQUEST
        if request.request_cc.only_if_cached:
            cache.count("miss")
            await cache.gateway_timeout(self.send)  # RFC 9111 §5.2.1.7
            return
        cache.count("miss")
        detail = "head" if request.method == "HEAD" else None
        if request.has_range:
            detail = "range"
        elif request.request_cc.no_store:
            detail = "request-no-store"
        await cache.pass_through(self.scope, self.receive, self.send, fwd=fwd, detail=detail)

    async def serve_found(
        self, found: Found, entry: CachedResponse, decision: ServeDecision, now: float, age: float
    ) -> None:
        """Serve a usable stored response (fresh, allowed stale, or SWR) or the 504."""
        cache, request = self.cache, self.request
        action = decision.action
        if action is ServeAction.GATEWAY_TIMEOUT:
            await cache.gateway_timeout(self.send)
            return
        detail: str | None = None
        if action is ServeAction.SERVE_STALE_AND_REFRESH:
            cache.count("stale")
            cache.spawn_refresh(self.scope, request, found, entry)
            detail = "stale-while-revalidate"
        elif decision.ttl <= 0:
            cache.count("stale")
            detail = "max-stale"
        else:
            cache.count("hit")
            if self.should_refresh_early(entry, decision):
                cache.spawn_refresh(self.scope, request, found, entry)
        if detail is None:
            status = format_hit_status(cache.hit_status_prefix, decision.ttl)
        else:
            status = format_cache_status(
                cache_name=cache.settings.cache_name, hit=True, ttl=decision.ttl, detail=detail
            )
        await cache.serve_entry(request, entry, self.send, now=now, cache_status=status, age=age)

    def should_refresh_early(self, entry: CachedResponse, decision: ServeDecision) -> bool:
        """XFetch: refresh before expiry with a probability growing as expiry nears and
        with the time the origin takes (delta * beta * -ln(rand) >= ttl)."""
        beta = self.cache.settings.xfetch_beta
        if beta <= 0 or entry.origin_time <= 0 or self.request.method != "GET":
            return False
        draw = 1.0 - random.random()  # noqa: S311 - not security sensitive; in (0, 1]
        return -entry.origin_time * beta * math.log(draw) >= decision.ttl

    async def lookup(self, spec: bytes, variant: str) -> Found:
        """One HMGET in the common case; a second one only when the URL's Vary spec is
        not the one this process remembered for it."""
        cache, request = self.cache, self.request
        reply: Lookup = await cache.store.lookup(request.primary_key, variant)
        if reply.vary_spec is not None and reply.vary_spec != spec:
            spec = reply.vary_spec
            cache.remember_vary_spec(request.primary_key, spec)
            variant = cache.variant_for(spec, request.headers)
            reply = await cache.store.lookup(request.primary_key, variant)
            if reply.vary_spec is not None and reply.vary_spec != spec:
                reply = Lookup(reply.vary_spec, None, reply.hit_for_pass)  # changing under us
        if reply.entry is None:
            reply = Lookup(reply.vary_spec, None, reply.hit_for_pass, None)
        entry = cache.codec.decode(reply.entry)
        return Found(
            entry=entry,
            variant=variant,
            vary_spec=spec,
            vary_miss=reply.vary_spec is not None and reply.entry is None,
            hit_for_pass=reply.hit_for_pass,
            fence=reply.fence if entry is not None else None,
        )

    async def fill(
        self,
        found: Found,
        *,
        stale: CachedResponse | None,
        decision: ServeDecision | None,
        fwd: ForwardReason,
    ) -> CachedResponse | None:
        """The flight leader's fill: take the Valkey lock, or wait for the process that
        holds it and serve what it stored."""
        cache, request = self.cache, self.request
        store = cache.store
        token: bytes | None = None
        try:
            attempt = await store.acquire_lock(
                request.primary_key, found.variant, cache.lock_ttl_ms, seen_fence=found.fence
            )
        except ValkeyError:
            cache.count("errors", operation="lock")
        else:
            token = attempt.token
            outcome: CachedResponse | None = None
            if attempt.changed:
                # Stored again since our read (another fill just finished): use it.
                outcome = await self.recheck(found)
            elif token is None:
                outcome = await cache.coordinator.await_remote(
                    lock_key=store.lock_key(request.primary_key, found.variant),
                    holder_ttl_ms=attempt.holder_ttl_ms,
                    recheck=lambda: self.recheck(found),
                )
            if outcome is not None:
                await self.serve_collapsed(outcome, filled=True)
                return outcome
        cache.count("miss")
        fill = Fill(
            cache,
            request,
            self.scope,
            found=found,
            token=token,
            stale=stale,
            decision=decision,
            fwd=fwd,
        )
        return await fill.run(self.receive, self.send)

    def selects(self, entry: CachedResponse) -> bool:
        """Whether this request selects ``entry``'s variant (RFC 9111 §4.1): a waiter may
        have been keyed under an older guess of the URL's Vary spec."""
        variant = self.cache.variant_for(entry.vary_spec, self.request.headers)
        return variant == entry.variant

    async def recheck(self, found: Found) -> CachedResponse | None:
        """After another process's fill: its entry, if it stored one this request may use."""
        cache, request = self.cache, self.request
        try:
            reply = await cache.store.lookup(request.primary_key, found.variant)
            if reply.vary_spec is not None and reply.vary_spec != found.vary_spec:
                # The fill brought a Vary spec this process had not seen: one more read.
                cache.remember_vary_spec(request.primary_key, reply.vary_spec)
                variant = cache.variant_for(reply.vary_spec, request.headers)
                reply = await cache.store.lookup(request.primary_key, variant)
        except ValkeyError:
            return None
        entry = cache.codec.decode(reply.entry)
        if entry is None or not self.selects(entry):
            return None
        decision = self.cache.serve_decision(self.request, entry, self.cache.clock())
        return entry if decision.action is ServeAction.SERVE else None

    async def serve_collapsed(self, outcome: CachedResponse | None, *, filled: bool) -> None:
        """Serve another request's outcome to a request that waited for it."""
        cache = self.cache
        if outcome is not None:
            now = cache.clock()
            decision, age = cache.assess(self.request, outcome, now)
            usable = decision.action in (ServeAction.SERVE, ServeAction.SERVE_STALE_AND_REFRESH)
            if usable and self.selects(outcome):
                # "coalesced": waited for another request's trip to the origin.
                cache.count("coalesced" if filled else "hit" if decision.ttl > 0 else "stale")
                status = format_cache_status(
                    cache_name=cache.settings.cache_name,
                    hit=not filled,
                    fwd=ForwardReason.URI_MISS if filled else None,
                    collapsed=filled,
                    ttl=decision.ttl,
                )
                await cache.serve_entry(
                    self.request, outcome, self.send, now=now, cache_status=status, age=age
                )
                return
            if not self.retried:
                # Another variant, or this request's directives want more: start over once,
                # now that this process knows the URL's Vary spec.
                self.retried = True
                await self.run()
                return
        # The leader's response cannot be shared (private, Set-Cookie, failed, timed out).
        await cache.pass_through(
            self.scope, self.receive, self.send, fwd=ForwardReason.URI_MISS, detail="not-shared"
        )
