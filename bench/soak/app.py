"""The soak app: every cachemw feature through its public API, small enough to read at once.

Layers, outermost first: ``WorkerStamp`` (soak only: the worker's PID on every response and
the time the request entered, so the driver can tell workers apart and bound when a limiter
decided), ``RateLimitMiddleware`` (search fails open, login fails closed),
``CacheMiddleware`` (product reads, tagged), then FastAPI with ``SessionMiddleware`` and
``HeadersMiddleware``. Configuration comes from the environment (``SOAK_VALKEY_URL``,
``SOAK_DB``, ``SOAK_VALKEY_TIMEOUT``) because uvicorn's ``--factory`` takes no arguments.
"""

# No `from __future__ import annotations`: FastAPI resolves endpoint annotations at runtime.
import asyncio
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from bench.soak.catalog import Catalog
from cachemw import (
    CacheInvalidator,
    CacheMiddleware,
    CacheSettings,
    HeadersMiddleware,
    RateLimitMiddleware,
    RouteCache,
    Rule,
    SessionConfig,
    SessionCookie,
    SessionMiddleware,
    SessionStore,
    Valkey,
)
from cachemw.headers.fastapi import cache_policy, condition
from cachemw.sessions import Session
from cachemw.sessions.fastapi import SessionDep, require_login, require_session
from cachemw.valkey import ValkeyError

__all__ = [
    "ENTERED_KEY",
    "LOGIN_LIMIT",
    "SEARCH_LIMIT",
    "SESSION_COOKIE",
    "WORKER_HEADER",
    "create_app",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WORKER_HEADER = "x-soak-worker"
ENTERED_KEY = "soak.entered"
SESSION_COOKIE = "soak_sid"
# One identity (every virtual user is 127.0.0.1) searching faster than this: real 429s.
SEARCH_LIMIT = (20, 2.0)
# Per username, fail closed: a login limit must not open up while Valkey is away.
LOGIN_LIMIT = (4, 2.0)
CART_PREFIX = "cart:"

ProductId = Annotated[int, PathParam(ge=1, le=100_000)]
Username = Annotated[str, PathParam(pattern=r"^[a-z0-9_]{1,32}$")]
Sku = Annotated[str, PathParam(pattern=r"^[a-z0-9_]{1,48}$")]
PRODUCT_POLICY = cache_policy(public=True, max_age=0, s_maxage=30)


class PriceUpdate(BaseModel):
    price: float = Field(ge=0, le=1_000_000, allow_inf_nan=False)


class WorkerStamp:
    """Soak instrumentation: when the request entered (before any limiter decided) and which
    worker answered (``x-soak-worker``), on every response including cache hits."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.worker = str(os.getpid()).encode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[ENTERED_KEY] = time.time()

        async def send_with_worker(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (WORKER_HEADER.encode(), self.worker)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_worker)


class LoopStallMonitor:
    """Soak instrumentation: when this worker's event loop was late by more than
    ``threshold`` seconds (CPU starvation or a blocking call), to explain budget misses."""

    def __init__(self, *, interval: float = 0.05, threshold: float = 0.1) -> None:
        self.interval = interval
        self.threshold = threshold
        self.stalls: deque[tuple[float, float]] = deque(maxlen=200)  # (wall time, lateness)

    async def run(self) -> None:
        while True:
            expected = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            lateness = time.monotonic() - expected
            if lateness > self.threshold:
                self.stalls.append((time.time() - lateness, lateness))


def _limit_text(limit: tuple[int, float]) -> str:
    return f"{limit[0]}/{limit[1]:g}s"


def build_api(catalog: Catalog, invalidator: CacheInvalidator, store: SessionStore) -> FastAPI:
    api = FastAPI(title="cachemw soak")
    api.state.invalidation_errors = 0
    api.state.stall_monitor = LoopStallMonitor()

    async def current_etag(product_id: ProductId) -> str | None:
        product = await catalog.product(product_id)
        return None if product is None else f'"v{product.version}"'

    @api.get("/products/{product_id}", dependencies=[PRODUCT_POLICY])
    async def read_product(product_id: ProductId, response: Response) -> dict[str, Any]:
        product = await catalog.product(product_id)
        if product is None:
            raise HTTPException(status_code=404, detail="no such product")
        response.headers["etag"] = f'"v{product.version}"'
        response.headers["cache-tag"] = f"product:{product_id}"
        return {"id": product.id, "price": product.price, "version": product.version}

    @api.put("/products/{product_id}", dependencies=[condition(etag=current_etag)])
    async def update_product(
        product_id: ProductId, update: PriceUpdate, request: Request
    ) -> dict[str, Any]:
        product = await catalog.product(product_id)
        if product is None:
            raise HTTPException(status_code=404, detail="no such product")
        if "if-match" not in request.headers:
            raise HTTPException(status_code=428, detail="send If-Match")
        if not await catalog.update_price(
            product_id, update.price, expected_version=product.version
        ):
            raise HTTPException(status_code=412, detail="the product changed meanwhile")
        invalidated = True
        try:
            await invalidator.invalidate_tags(f"product:{product_id}")
        except ValkeyError:
            # The cache fails open: the entry expires within s-maxage (30 s) by itself.
            api.state.invalidation_errors += 1
            invalidated = False
        return {"id": product_id, "version": product.version + 1, "invalidated": invalidated}

    @api.post("/login/{username}")
    async def login(username: Username, session: SessionDep) -> dict[str, str]:
        session.rotate(user_id=username)  # OWASP: a new id at every privilege change
        session["username"] = username
        return {"username": username}

    @api.post("/cart/{sku}")
    async def add_to_cart(
        sku: Sku, session: Annotated[Session, Depends(require_session)]
    ) -> dict[str, str]:
        session[CART_PREFIX + sku] = 1  # one HSET of this field at response start
        return {"sku": sku}

    @api.get("/me")
    async def me(session: Annotated[Session, Depends(require_login)]) -> dict[str, Any]:
        cart = sorted(name[len(CART_PREFIX) :] for name in session if name.startswith(CART_PREFIX))
        return {"username": session.get("username", type=str), "cart": cart}

    @api.get("/search")
    async def search(request: Request, q: str = "") -> dict[str, Any]:
        return {"q": q, "entered": request.scope.get(ENTERED_KEY), "admitted_at": time.time()}

    @api.get("/stats")
    async def stats() -> dict[str, Any]:
        monitor: LoopStallMonitor = api.state.stall_monitor
        return {
            "worker": os.getpid(),
            "invalidation_errors": api.state.invalidation_errors,
            "loop_stalls": [list(stall) for stall in monitor.stalls],
        }

    api.add_middleware(HeadersMiddleware)
    api.add_middleware(SessionMiddleware, store=store)
    return api


def create_app() -> ASGIApp:
    """The ASGI app uvicorn serves (``--factory``); no I/O until the lifespan starts."""
    valkey = Valkey.from_url(
        os.environ["SOAK_VALKEY_URL"], command_timeout=float(os.environ["SOAK_VALKEY_TIMEOUT"])
    )
    catalog = Catalog(Path(os.environ["SOAK_DB"]))
    store = SessionStore(
        valkey, SessionConfig(cookie=SessionCookie(name=SESSION_COOKIE, secure=False))
    )
    api = build_api(catalog, CacheInvalidator(valkey), store)
    cache = CacheMiddleware(
        api,
        valkey=valkey,
        settings=CacheSettings(
            routes={"/*": RouteCache(enabled=False), "/products/*": RouteCache()}
        ),
    )
    rules = [
        Rule(name="search", limit=_limit_text(SEARCH_LIMIT), routes=("/search",), on_error="open"),
        Rule(
            name="login",
            limit=_limit_text(LOGIN_LIMIT),
            routes=("/login/{username}",),
            per_params=("username",),
            methods=("POST",),
            on_error="closed",
        ),
    ]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(valkey.lifespan())
            stack.push_async_callback(cache.aclose)
            monitor = asyncio.create_task(api.state.stall_monitor.run())
            stack.callback(monitor.cancel)
            yield

    api.router.lifespan_context = lifespan
    return WorkerStamp(RateLimitMiddleware(cache, valkey=valkey, rules=rules))
