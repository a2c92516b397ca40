"""The demo's request log (one line per request, with the cache outcome) and its gauges."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cachemw.metrics import Metrics
from cachemw.valkey import BreakerState, Valkey

__all__ = ["BREAKER_STATES", "ActiveSessions", "RequestLog", "cache_outcome", "register_gauges"]

logger = logging.getLogger("demo_app.requests")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BREAKER_STATES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
REQUESTS = "demo_http_requests_total"


def cache_outcome(cache_status: bytes | None) -> str:
    """``hit``, ``collapsed``, ``stale``, ``miss``, ``bypass`` or ``none``, from Cache-Status.

    RFC 9211: ``hit`` means served from cache; ``collapsed`` served the stored response of
    another request's fill it waited for; ``fwd=stale`` a stale entry went to the origin;
    ``fwd=bypass`` the cache was told to stay away; any other ``fwd`` is a miss.
    """
    if cache_status is None:
        return "none"
    params = {part.strip().split(b"=", 1)[0]: part.strip() for part in cache_status.split(b";")}
    if b"hit" in params:
        return "hit"
    if b"collapsed" in params:
        return "collapsed"
    forward = params.get(b"fwd", b"")
    if forward == b"fwd=stale":
        return "stale"
    if forward == b"fwd=bypass":
        return "bypass"
    return "miss" if forward else "none"


class RequestLog:
    """Outermost middleware: ``GET /products/1 200 31.4ms cache=miss`` per request."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        metrics.describe(REQUESTS, "HTTP requests the demo answered, by cache outcome")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before starting a response
        cache_status: bytes | None = None

        async def send_observed(message: Message) -> None:
            nonlocal status, cache_status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", ()):
                    if name == b"cache-status":
                        cache_status = value
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            outcome = cache_outcome(cache_status)
            self.metrics.incr(REQUESTS, cache=outcome)
            elapsed_ms = (time.perf_counter() - started) * 1000
            query = "?" if scope.get("query_string") else ""
            logger.info(
                "%s %s%s %d %.1fms cache=%s",
                scope["method"],
                scope["path"],
                query,  # the query is not logged: it may carry personal data
                status,
                elapsed_ms,
                outcome,
            )


class ActiveSessions:
    """The last counted number of live sessions (refreshed by /metrics and /api/stats)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0


def register_gauges(
    metrics: Metrics, valkey: Valkey, state_valkey: Valkey, sessions: ActiveSessions
) -> None:
    metrics.gauge(
        "cachemw_valkey_breaker_state",
        lambda: BREAKER_STATES[valkey.breaker.state],
        "Valkey circuit breaker: 0 closed, 1 half-open, 2 open",
    )
    if state_valkey is not valkey:
        metrics.gauge(
            "demo_state_valkey_breaker_state",
            lambda: BREAKER_STATES[state_valkey.breaker.state],
            "Circuit breaker of the sessions/rate-limit Valkey: 0 closed, 1 half-open, 2 open",
        )
    metrics.gauge(
        "demo_active_sessions",
        lambda: sessions.value,
        "Live sessions of the demo's users (counted from the per-user session indexes)",
    )
