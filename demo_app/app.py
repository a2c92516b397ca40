"""The demo shop: every cachemw feature wired into one FastAPI app, the way the README says.

Order of the layers, outermost first, and why:

1. ``RequestLog`` and ``DateHeader`` (demo only): one log line per request with the cache
   outcome; a ``Date`` on every response.
2. ``RateLimitMiddleware``: the login limit, before anything else spends work on the request.
3. ``CacheMiddleware``: answers hits without running anything below it.
4. ``SessionMiddleware`` (inside the cache): the ``Vary: Cookie`` and ``no-store`` it adds
   are seen by the cache, which therefore never stores a session response.
5. ``HeadersMiddleware``: route cache policies, ETags and 304/412 for the app.

``create_app()`` builds everything without I/O (uvicorn's ``factory=True`` calls it); the
FastAPI lifespan checks Valkey at start and closes the cache, Valkey and database at stop.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AsyncExitStack, asynccontextmanager
from email.utils import formatdate
from typing import Any

from fastapi import FastAPI

from cachemw.cache import (
    CacheInvalidator,
    CacheMiddleware,
    CacheSettings,
    FunctionCache,
    RouteCache,
)
from cachemw.headers import HeadersMiddleware
from cachemw.metrics import Metrics
from cachemw.ratelimit import RateLimitMiddleware, Rule
from cachemw.ratelimit.fastapi import RateLimiter, install_rate_limit_handler
from cachemw.sessions import SessionMiddleware, SessionStore
from cachemw.valkey import Valkey
from demo_app.account import account_router
from demo_app.config import DemoConfig
from demo_app.dashboard import DemoStats, dashboard_router
from demo_app.db import ShopDatabase
from demo_app.observability import ActiveSessions, RequestLog, register_gauges
from demo_app.shop import shop_router

__all__ = ["DemoApp", "create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Only the product routes are cached. They ignore cookies (a logged-in visitor gets the same
# product JSON), so requests carrying the session cookie may be served from the cache too.
CACHE_SETTINGS = CacheSettings(
    routes={
        "/*": RouteCache(enabled=False),
        "/products*": RouteCache(allow_cookies=True),
    }
)
LOGIN_RULE = Rule(
    name="login", limit="5/minute", routes=("/login",), methods=("POST",), on_error="closed"
)


class DateHeader:
    """Adds ``Date`` to responses that have none (RFC 9110 §6.6.1: an origin with a clock
    sends one). ``make demo`` runs uvicorn without its own Date, which it would add in front
    of every response, duplicating the stored ``Date`` of a response served from the cache."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_date(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name == b"date" for name, _ in headers):
                    headers.append((b"date", formatdate(usegmt=True).encode("ascii")))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_date)


class DemoApp:
    """The ASGI app uvicorn serves, plus handles on its parts for tests and shutdown."""

    def __init__(self, config: DemoConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.valkey = Valkey(config.valkey)
        # Sessions and rate-limit counters must not be evicted: their own Valkey if given.
        self.state_valkey = (
            Valkey(config.state_valkey) if config.state_valkey is not None else self.valkey
        )
        self.db = ShopDatabase(config.database, read_delay=config.read_delay)
        self.sessions = SessionStore(self.state_valkey, config.sessions, metrics=self.metrics)
        self.limiter = RateLimiter(self.state_valkey, metrics=self.metrics)
        self.invalidator = CacheInvalidator(self.valkey)
        self.functions = FunctionCache(self.valkey, metrics=self.metrics)
        active = ActiveSessions()
        register_gauges(self.metrics, self.valkey, self.state_valkey, active)
        self.stats = DemoStats(
            self.metrics,
            self.valkey,
            self.sessions,
            self.db,
            active,
            state_valkey=self.state_valkey,
        )

        self.api = FastAPI(title="cachemw demo shop", lifespan=lambda _: self.lifespan())
        install_rate_limit_handler(self.api)
        self.api.include_router(dashboard_router(self.stats))
        self.api.include_router(
            shop_router(
                self.db,
                invalidator=self.invalidator,
                functions=self.functions,
                limiter=self.limiter,
                metrics=self.metrics,
            )
        )
        self.api.include_router(account_router(self.db, self.sessions))
        # add_middleware: the last one added runs first.
        self.api.add_middleware(HeadersMiddleware)
        self.api.add_middleware(SessionMiddleware, store=self.sessions)

        self.cache = CacheMiddleware(
            self.api, valkey=self.valkey, settings=CACHE_SETTINGS, metrics=self.metrics
        )
        limited = RateLimitMiddleware(
            self.cache, valkey=self.state_valkey, rules=[LOGIN_RULE], metrics=self.metrics
        )
        self.asgi = RequestLog(DateHeader(limited), metrics=self.metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.asgi(scope, receive, send)

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Start-up (check Valkey, which also loads a Cluster's slot map) and shutdown
        (stop background refreshes, close Valkey and the database); FastAPI runs it, tests
        that drive the app without a server enter it themselves."""
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.valkey.lifespan())
            if self.state_valkey is not self.valkey:
                await stack.enter_async_context(self.state_valkey.lifespan())
            stack.callback(self.db.close)
            stack.push_async_callback(self.cache.aclose)
            stack.push_async_callback(self.functions.aclose)
            # Everything built so far lives as long as the process: freezing it keeps full
            # collections (the p99 pauses under load) to what requests allocate. After the
            # start-up work, not at import: uvicorn workers each run their own lifespan.
            if self.config.freeze_after_startup:
                gc.collect()
                gc.freeze()
            yield


def create_app(config: DemoConfig | None = None) -> DemoApp:
    """Build the demo; configuration comes from the environment unless given."""
    return DemoApp(config or DemoConfig.from_env())
