"""The features wrapped around a finished app from outside (plain ASGI composition).

The README wires them with ``app.add_middleware``, which puts them inside Starlette's
``ServerErrorMiddleware``. Pure ASGI middleware may also wrap the finished app,
``SessionMiddleware(app, store=...)``; the failure policy should not depend on which.
"""

from __future__ import annotations

from typing import Any, cast

import httpx

from cachemw.cache import CacheMiddleware
from cachemw.headers import HeadersMiddleware
from cachemw.ratelimit import RateLimitMiddleware
from cachemw.sessions import SessionConfig, SessionCookie, SessionMiddleware, SessionStore
from cachemw.valkey import Valkey, ValkeySettings
from cachemw.valkey.embedded import EmbeddedValkey
from tests.hardening.stack import COOKIE, origin_app, rules


async def test_outside_wrapped_stack_answers_503_on_session_route_when_valkey_stops(
    private_server: EmbeddedValkey,
) -> None:
    valkey = Valkey(ValkeySettings(url=private_server.url, command_timeout=0.3))
    config = SessionConfig(cookie=SessionCookie(name=COOKIE, secure=False))
    sessions = SessionMiddleware(
        HeadersMiddleware(origin_app()), store=SessionStore(valkey, config)
    )
    # cast: SessionMiddleware types its scope as dict, CacheMiddleware's ASGIApp as
    # MutableMapping, so mypy refuses the (working) composition; reported.
    cache = CacheMiddleware(cast(Any, sessions), valkey=valkey)
    app = RateLimitMiddleware(cache, valkey=valkey, rules=rules())
    # A server answers what was sent, and logs what was raised after it.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
            created = await http.post("/cart/apple")
            assert created.status_code == 200
            private_server.stop()
            response = await http.get("/basket")
    finally:
        await cache.aclose()
        await valkey.aclose()
    assert response.status_code == 503
