"""One full-stack FastAPI app with every cachemw feature on, as the README deploys it.

Outermost first (README "Production settings"): rate limits, the cache, sessions, headers.
Routes:

* ``GET /catalogue/{item}``: public, cached (``s-maxage=60``), not limited; its body
  reflects the request fields a poisoned entry would leak (forwarding headers, query);
* ``GET /page/{number}``: cached, a 16 KiB incompressible body (for floods);
* ``GET /public``: not cached (``RouteCache(enabled=False)``), no session, not limited;
* ``GET /basket`` (reads the session), ``POST /cart/{item}`` (writes it),
  ``GET /members`` (``require_session``: 401 without a live session);
* ``GET /search``: limited, ``on_error="open"``; ``GET /export``: limited, ``on_error="closed"``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import httpx
from fastapi import Depends, FastAPI, Request, Response

from cachemw.cache import CacheMiddleware, CacheSettings, RouteCache
from cachemw.headers import HeadersMiddleware
from cachemw.headers.fastapi import cache_policy
from cachemw.metrics import Metrics
from cachemw.ratelimit import RateLimitMiddleware, Rule
from cachemw.sessions import SessionConfig, SessionCookie, SessionMiddleware, SessionStore
from cachemw.sessions.fastapi import SessionDep, require_session
from cachemw.valkey import Valkey

T = TypeVar("T")
COOKIE = "sid"
REFLECTED_HEADERS = ("host", "x-forwarded-host", "forwarded", "x-original-url")
SEARCH_LIMIT = 100_000  # never reached by a test: only the failure policy is under test
EXPORT_LIMIT = 100_000
PAGE_SIZE = 16 * 1024


def origin_app() -> FastAPI:
    """The application alone, without any middleware: the reference a clean request is
    compared against."""
    app = FastAPI()

    @app.get("/catalogue/{item}", dependencies=[cache_policy(public=True, s_maxage=60)])
    async def catalogue(item: str, request: Request) -> dict[str, Any]:
        reflected = {name: request.headers.get(name) for name in REFLECTED_HEADERS}
        return {"item": item, "query": request.url.query, "headers": reflected}

    @app.get("/page/{number}", dependencies=[cache_policy(public=True, s_maxage=60)])
    async def page(number: int) -> Response:
        # Incompressible, distinct per page: a cache-busting flood fills memory fast.
        return Response(digest_stream(number, PAGE_SIZE), media_type="application/octet-stream")

    @app.get("/public")
    async def public() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/basket")
    async def basket(session: SessionDep) -> dict[str, Any]:
        return {"items": session.get("cart", type=list[str]) or [], "new": session.is_new}

    @app.post("/cart/{item}")
    async def add_to_cart(item: str, session: SessionDep) -> dict[str, int]:
        cart = session.get("cart", type=list[str]) or []
        session["cart"] = [*cart, item]
        return {"items": len(cart) + 1}

    @app.get("/members")
    async def members(session: Annotated[Any, Depends(require_session)]) -> dict[str, bool]:
        return {"member": True}

    @app.get("/search")
    async def search() -> dict[str, list[str]]:
        return {"results": []}

    @app.get("/export")
    async def export() -> dict[str, str]:
        return {"export": "ok"}

    return app


def digest_stream(seed: int, size: int) -> bytes:
    blocks = (hashlib.blake2b(b"%d:%d" % (seed, i)).digest() for i in range(size // 64 + 1))
    return b"".join(blocks)[:size]


def rules() -> list[Rule]:
    return [
        Rule(name="search", limit=f"{SEARCH_LIMIT}/minute", routes=("/search",)),
        Rule(name="export", limit=f"{EXPORT_LIMIT}/minute", routes=("/export",), on_error="closed"),
    ]


@dataclass
class Stack:
    """The wrapped app plus what tests look at."""

    app: FastAPI
    cache: CacheMiddleware
    store: SessionStore
    metrics: Metrics


def build_stack(
    cache_valkey: Valkey,
    state_valkey: Valkey | None = None,
    *,
    session_timeout: float | None = None,
    retry_after: int = 2,
) -> Stack:
    """Every feature on. ``state_valkey`` (sessions, limits) defaults to ``cache_valkey``;
    ``session_timeout=None`` gives sessions the client's own ``command_timeout``."""
    state = state_valkey or cache_valkey
    metrics = Metrics()
    config = SessionConfig(
        cookie=SessionCookie(name=COOKIE, secure=False),
        store_timeout=session_timeout,
        retry_after=retry_after,
    )
    store = SessionStore(state, config, metrics=metrics)
    app = origin_app()
    # add_middleware: added last = outermost, and all of them inside FastAPI's own error
    # middleware, as the README deploys them.
    app.add_middleware(HeadersMiddleware)
    app.add_middleware(SessionMiddleware, store=store)
    app.add_middleware(
        CacheMiddleware,
        valkey=cache_valkey,
        settings=CacheSettings(routes={"/public": RouteCache(enabled=False)}),
        metrics=metrics,
    )
    app.add_middleware(RateLimitMiddleware, valkey=state, rules=rules(), metrics=metrics)
    app.middleware_stack = app.build_middleware_stack()
    return Stack(
        app=app, cache=_find(app.middleware_stack, CacheMiddleware), store=store, metrics=metrics
    )


def _find(layer: Any, kind: type[T]) -> T:
    """The middleware instance of ``kind`` in a built stack (each layer keeps ``.app``)."""
    while not isinstance(layer, kind):
        layer = layer.app
    return layer


class Visitor:
    """One browser on the stack: keeps the session cookie as a browser would."""

    def __init__(self, app: Any, ip: str = "198.51.100.7") -> None:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://shop.test")
        self.sid: str | None = None

    async def request(self, method: str, path: str, *, with_cookie: bool = True) -> httpx.Response:
        self.http.cookies.clear()
        headers = {"cookie": f"{COOKIE}={self.sid}"} if with_cookie and self.sid else {}
        response = await self.http.request(method, path, headers=headers)
        for line in response.headers.get_list("set-cookie"):
            name, _, rest = line.partition("=")
            if name == COOKIE:
                self.sid = rest.split(";", 1)[0] or None
        return response

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, **kw)


@asynccontextmanager
async def visiting(stack: Stack, ip: str = "198.51.100.7") -> AsyncIterator[Visitor]:
    visitor = Visitor(stack.app, ip)
    try:
        yield visitor
    finally:
        await visitor.http.aclose()
        await stack.cache.aclose()
