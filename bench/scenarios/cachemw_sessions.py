"""cachemw server-side sessions (``SessionMiddleware`` + ``SessionStore``, one Valkey hash per
session). ``/login`` creates the session the load then carries; three endpoints:

* ``/modify``: load, read, change one value (the session read+modify scenario);
* ``/read``: load and read only;
* ``/untouched``: never loads the session although the cookie is sent (no Valkey at all).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from bench.scenarios._common import PAYLOAD, valkey_url_at_import
from cachemw.sessions import (
    SessionConfig,
    SessionCookie,
    SessionMiddleware,
    SessionStore,
    load_session,
)
from cachemw.valkey import Valkey

valkey = Valkey.from_url(valkey_url_at_import())
# Plain-HTTP loopback: no __Host- prefix, no Secure flag.
store = SessionStore(valkey, SessionConfig(cookie=SessionCookie(name="sid", secure=False)))
app = FastAPI(lifespan=valkey.lifespan)
app.add_middleware(SessionMiddleware, store=store)


# Measured routes first: Starlette tries routes in order (FastAPI's docs routes come before
# these), and /untouched must cost the router what the baseline's only route does.
@app.get("/untouched", response_model=None)
async def untouched() -> dict[str, Any]:
    return PAYLOAD


@app.get("/read", response_model=None)
async def read(request: Request) -> dict[str, Any]:
    session = await load_session(request)
    if session.get("user_id") != 42:
        raise RuntimeError("the bench session lost its data")
    return PAYLOAD


@app.get("/modify", response_model=None)
async def modify(request: Request) -> dict[str, Any]:
    session = await load_session(request)
    session["views"] = int(session.get("views", 0)) + 1
    return PAYLOAD


@app.get("/login", response_model=None)
async def login(request: Request) -> dict[str, Any]:
    session = await load_session(request)
    session["user_id"] = 42
    session["cart"] = ["SKU-00001", "SKU-00002"]
    session["views"] = 0
    return {"ok": True}
