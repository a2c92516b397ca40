"""The flight leader's trip to the app: forward the response, tee it into the store.

A fill strips the client's conditional fields so the app sends a full (storable) response,
then answers the client's conditions from that response itself (RFC 9110 §13.2.2). With a
stale entry it instead sends the entry's validators (RFC 9111 §4.3.1) and a 304 freshens
the entry (§4.3.4) without a body transfer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cachemw.cache.entry import CachedResponse
from cachemw.cache.recorder import ResponseRecorder, StartAction
from cachemw.cache.request import CONDITIONAL_FIELDS, CacheRequest
from cachemw.cache.responses import (
    ResponseFacts,
    build_entry,
    client_headers,
    freshen_entry,
    response_facts,
)
from cachemw.http.cache_status import ForwardReason, format_cache_status
from cachemw.http.freshness import ServeDecision
from cachemw.http.policy import not_modified_headers
from cachemw.http.validators import (
    PreconditionOutcome,
    evaluate_preconditions,
    response_validators,
)
from cachemw.valkey import ValkeyError

if TYPE_CHECKING:
    from cachemw.cache.middleware import CacheMiddleware, Receive, Send
    from cachemw.cache.responder import Found

__all__ = ["Fill"]

_FRESHEN = "freshen"
_STALE_IF_ERROR = "stale-if-error"
# Refusals after which the next burst should not queue behind a leader (hit-for-pass).
_PASS_REFUSALS = frozenset(
    ("private", "set-cookie", "no-store", "authorization", "vary-star", "too-large",
     "headers-too-large", "no-freshness")
)  # fmt: skip


class Fill:
    """One leader's app call; ``run`` returns the entry others may be served, or None."""

    __slots__ = (
        "cache",
        "decision",
        "detail",
        "facts",
        "found",
        "fwd",
        "mode",
        "request",
        "scope",
        "stale",
        "token",
    )

    def __init__(
        self,
        cache: CacheMiddleware,
        request: CacheRequest,
        scope: Mapping[str, Any],
        *,
        found: Found,
        token: bytes | None,
        stale: CachedResponse | None,
        decision: ServeDecision | None,
        fwd: ForwardReason,
        detail: str | None = None,
    ) -> None:
        self.cache = cache
        self.detail = detail
        self.request = request
        self.scope = scope
        self.found = found
        self.token = token
        self.stale = stale
        self.decision = decision
        self.fwd = fwd
        self.mode: str | None = None
        self.facts: ResponseFacts | None = None

    def origin_scope(self) -> dict[str, Any]:
        headers = [h for h in self.request.headers if h[0] not in CONDITIONAL_FIELDS]
        stale = self.stale
        if stale is not None:
            if stale.etag:
                headers.append((b"if-none-match", stale.etag))
            if stale.last_modified:
                headers.append((b"if-modified-since", stale.last_modified))
        scope = dict(self.scope)
        scope["headers"] = headers
        scope["method"] = "GET"  # a fill always asks for the full representation
        return scope

    def stale_on_error(self) -> bool:
        return (
            self.stale is not None
            and self.decision is not None
            and (self.decision.serve_stale_on_error)
        )

    async def run(self, receive: Receive, send: Send | None) -> CachedResponse | None:
        cache = self.cache
        request_time = cache.clock()
        recorder = ResponseRecorder(
            send, self.on_start, max_body=cache.settings.max_body_size, clock=cache.clock
        )
        try:
            await cache.app(self.origin_scope(), receive, recorder)
        except Exception:
            await self.release(hit_for_pass=False)
            if send is not None and self.stale_on_error() and not recorder.sent_to_client:
                await self.serve_stale_on_error(send, fwd_status=None)
                return None
            raise
        return await self.finish(recorder, request_time, send)

    def on_start(self, status: int, headers: list[tuple[bytes, bytes]]) -> StartAction:
        cache, request = self.cache, self.request
        if status == 304 and self.stale is not None:
            self.mode = _FRESHEN
            return StartAction(status=None, headers=None, forward_body=False, record=False)
        if status >= 500 and self.stale_on_error():
            self.mode = _STALE_IF_ERROR
            return StartAction(status=None, headers=None, forward_body=False, record=False)
        facts = response_facts(request, status, headers, cache.settings)
        if facts.refusal is None and _declared_length(headers) > cache.settings.max_body_size:
            facts.refusal = "too-large"
        self.facts = facts
        storable = facts.refusal is None
        out = client_headers(headers, cache.settings)
        out.append(
            (
                b"cache-status",
                format_cache_status(
                    cache_name=cache.settings.cache_name,
                    fwd=self.fwd,
                    fwd_status=status,
                    stored=storable and self.token is not None,
                    detail=facts.refusal or self.detail,
                ),
            )
        )
        conditions = request.conditions
        if conditions is not None and 200 <= status < 300:
            etag, last_modified = response_validators(headers)
            outcome = evaluate_preconditions(
                conditions,
                method=request.method,
                etag=etag,
                last_modified=last_modified,
                now=cache.clock(),
            )
            if outcome is PreconditionOutcome.NOT_MODIFIED:
                return StartAction(
                    status=304,
                    headers=not_modified_headers(out, keep=cache.not_modified_fields),
                    forward_body=False,
                    record=storable,
                )
            if outcome is PreconditionOutcome.PRECONDITION_FAILED:
                return StartAction(
                    status=412,
                    headers=[(b"content-length", b"0"), out[-1]],
                    forward_body=False,
                    record=storable,
                )
        return StartAction(status=status, headers=out, forward_body=True, record=storable)

    async def finish(
        self, recorder: ResponseRecorder, request_time: float, send: Send | None
    ) -> CachedResponse | None:
        cache = self.cache
        if self.mode == _FRESHEN and self.stale is not None:
            entry = freshen_entry(
                self.stale,
                recorder.headers,
                request_time=request_time,
                response_time=recorder.response_time,
            )
            stored = await self.save(entry)
            cache.count("revalidated")
            if send is not None:
                now = cache.clock()
                decision = cache.serve_decision(self.request, entry, now)
                status = format_cache_status(
                    cache_name=cache.settings.cache_name,
                    fwd=ForwardReason.STALE,
                    fwd_status=304,
                    ttl=decision.ttl,
                    stored=stored,
                )
                await cache.serve_entry(self.request, entry, send, now=now, cache_status=status)
            return entry
        if self.mode == _STALE_IF_ERROR:
            await self.release(hit_for_pass=False)
            if send is not None:
                await self.serve_stale_on_error(send, fwd_status=recorder.status)
            return None
        facts = self.facts
        body = recorder.body
        if facts is None:  # the app returned without a response
            await self.release(hit_for_pass=False)
            return None
        if facts.refusal is None and body is None:
            facts.refusal = "too-large" if recorder.complete else "incomplete"
        if facts.refusal is not None or body is None:
            cache.count("store_refused", reason=facts.refusal or "incomplete")
            await self.release(
                hit_for_pass=facts.refusal in _PASS_REFUSALS and recorder.status < 500
            )
            return None
        spec = ",".join(facts.vary).encode("latin-1")
        variant = cache.variant_for(spec, self.request.headers)
        entry = build_entry(
            status=recorder.status,
            headers=recorder.headers,
            body=body,
            facts=facts,
            request_time=request_time,
            response_time=recorder.response_time,
            default_ttl=self.request.route.default_ttl,
            vary_spec=spec,
            variant=variant,
            settings=cache.settings,
        )
        await self.save(entry)
        return entry

    async def save(self, entry: CachedResponse) -> bool:
        """Store ``entry`` under our fencing token (no token: share in-process only)."""
        cache, request = self.cache, self.request
        token = self.token
        if token is None:
            return False
        retention = cache.retention(entry, now=entry.response_time)
        if retention <= 0:
            cache.count("store_refused", reason="no-retention")
            await self.release(hit_for_pass=False)
            return False
        retention_ms = int(retention * 1000) + 1
        try:
            stored = await cache.store.store(
                primary_key=request.primary_key,
                lock_key=cache.store.lock_key(request.primary_key, self.found.variant),
                variant=entry.variant,
                vary_spec=entry.vary_spec,
                entry=cache.codec.encode(entry),
                retention_ms=retention_ms,
                url=request.url,
                token=token,
            )
            if stored:
                cache.remember_vary_spec(request.primary_key, entry.vary_spec)
                if entry.tags:
                    await cache.store.add_tags(request.primary_key, entry.tags, retention_ms)
            else:
                cache.count("store_refused", reason="fenced")
        except ValkeyError:
            cache.count("errors", operation="store")
            return False
        self.token = None
        return stored

    async def release(self, *, hit_for_pass: bool) -> None:
        token, self.token = self.token, None
        if token is None:
            return
        cache = self.cache
        pass_ms = int(cache.settings.hit_for_pass_ttl * 1000) if hit_for_pass else 0
        try:
            await cache.store.release(
                primary_key=self.request.primary_key,
                variant=self.found.variant,
                token=token,
                hit_for_pass_ms=pass_ms,
            )
        except ValkeyError:
            cache.count("errors", operation="release")

    async def serve_stale_on_error(self, send: Send, *, fwd_status: int | None) -> None:
        cache = self.cache
        stale = self.stale
        assert stale is not None
        cache.count("stale")
        now = cache.clock()
        decision = cache.serve_decision(self.request, stale, now)
        status = format_cache_status(
            cache_name=cache.settings.cache_name,
            fwd=ForwardReason.STALE,
            fwd_status=fwd_status,
            ttl=decision.ttl,
            detail="stale-if-error",
        )
        await cache.serve_entry(self.request, stale, send, now=now, cache_status=status)


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() and len(value) < 19 else 0
    return 0
