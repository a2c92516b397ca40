"""``ConcurrencyLimitMiddleware``: at most N requests in flight per identity, across processes.

Each admitted request holds a lease (one EVALSHA to take it, one ZREM to give it back when
the response is complete, also on error or cancellation). A process that dies while holding
leases cannot leak them: a lease expires by itself ``lease_seconds`` after it was taken, on
the Valkey server's clock. Choose ``lease_seconds`` above the slowest legitimate request.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from cachemw.http.client_ip import ClientAddressPolicy
from cachemw.http.ratelimit import KeyFunction, quota_exceeded_body, reduced_capacity_body
from cachemw.http.routing import route_path
from cachemw.metrics import Metrics
from cachemw.ratelimit.identity import client_ip
from cachemw.ratelimit.limiter import problem_response
from cachemw.ratelimit.middleware import send_rejection
from cachemw.ratelimit.store import Lease, RateLimitStore
from cachemw.valkey import Valkey, ValkeyError

__all__ = ["ConcurrencyLimitMiddleware"]

_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
IN_FLIGHT_LIMITED = "cachemw_concurrency_limited_total"
IN_FLIGHT_ERRORS = "cachemw_concurrency_errors_total"


class ConcurrencyLimitMiddleware:
    """``ConcurrencyLimitMiddleware(app, valkey=v, name="export", max_in_flight=2,
    path_prefixes=("/export",))``: a third concurrent export per client gets a 429."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        valkey: Valkey,
        name: str,
        max_in_flight: int,
        lease_seconds: float = 60.0,
        path_prefixes: Sequence[str] = ("/",),
        identity: KeyFunction | None = None,
        client_address: ClientAddressPolicy | None = None,
        on_error: Literal["open", "closed"] = "open",
        unavailable_retry_after: int = 1,
        metrics: Metrics | None = None,
    ) -> None:
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"name {name!r} must match {_NAME_RE.pattern}")
        if isinstance(max_in_flight, bool) or not (
            isinstance(max_in_flight, int) and 1 <= max_in_flight <= 1_000_000
        ):
            raise ValueError(f"max_in_flight must be 1..1000000, got {max_in_flight!r}")
        if not 0 < lease_seconds <= 86400:
            raise ValueError(f"lease_seconds must be > 0 and <= 86400, got {lease_seconds!r}")
        if isinstance(path_prefixes, str) or not all(p.startswith("/") for p in path_prefixes):
            raise ValueError(f"path_prefixes must be paths starting '/', got {path_prefixes!r}")
        if on_error not in ("open", "closed"):
            raise ValueError(f"on_error must be 'open' or 'closed', got {on_error!r}")
        if not 1 <= unavailable_retry_after <= 3600:
            raise ValueError(
                f"unavailable_retry_after must be 1..3600, got {unavailable_retry_after!r}"
            )
        self.app = app
        self.store = RateLimitStore(valkey)
        self.name = name
        self.max_in_flight = max_in_flight
        self.lease_seconds = lease_seconds
        # "/export" covers "/export" and "/export/..." but not "/exports".
        self._exact = frozenset(p.rstrip("/") or "/" for p in path_prefixes)
        self._below = tuple(p.rstrip("/") + "/" for p in path_prefixes)
        self.identity = identity or client_ip(client_address)
        self.on_error = on_error
        self.metrics = metrics
        policy = f'"{name}";q={max_in_flight};qu="concurrency"'.encode()
        self._policy_headers = [(b"ratelimit-policy", policy)]
        self._unavailable = problem_response(
            503, reduced_capacity_body(), unavailable_retry_after, []
        )
        self._limited_body = quota_exceeded_body([name])

    def _count(self, metric: str) -> None:
        if self.metrics is not None:
            self.metrics.incr(metric, rule=self.name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path not in self._exact and not path.startswith(self._below):
            await self.app(scope, receive, send)
            return
        who = self.identity(scope)
        if who is None:
            await self.app(scope, receive, send)
            return
        try:
            lease: Lease | None = await self.store.acquire(
                self.name, who, max_in_flight=self.max_in_flight, lease_seconds=self.lease_seconds
            )
        except ValkeyError:
            self._count(IN_FLIGHT_ERRORS)
            if self.on_error == "closed":
                await send_rejection(send, self._unavailable)
                return
            lease = None
        if lease is not None and not lease.admitted:
            self._count(IN_FLIGHT_LIMITED)
            state = f'"{self.name}";r=0;t={math.ceil(lease.retry_after_micros / 1e6)}'.encode()
            headers = [*self._policy_headers, (b"ratelimit", state)]
            retry_after = max(1, math.ceil(lease.retry_after_micros / 1e6))
            await send_rejection(
                send, problem_response(429, self._limited_body, retry_after, headers)
            )
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if lease is not None:
                # Shielded: a cancelled request still gives its slot back.
                await asyncio.shield(self._release(lease))

    async def _release(self, lease: Lease) -> None:
        try:
            await self.store.release(lease)
        except ValkeyError:
            self._count(IN_FLIGHT_ERRORS)  # the lease expires by itself
