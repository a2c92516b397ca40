"""Peer: starsessions (README "Usage" + "Redis") with RedisStore: load the session, read it,
modify it (a view counter), save it. ``/login`` creates the session the load then uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from redis.asyncio import Redis
from starsessions import SessionMiddleware, load_session
from starsessions.stores.redis import RedisStore

from bench.scenarios._common import PAYLOAD, valkey_url_at_import

# README: pass a Redis instance to the store and close it on shutdown.
client = Redis.from_url(valkey_url_at_import())
store = RedisStore(connection=client)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await client.aclose()


app = FastAPI(lifespan=lifespan)
app.add_middleware(SessionMiddleware, store=store, cookie_https_only=False, lifetime=3600)


@app.get("/login", response_model=None)
async def login(request: Request) -> dict[str, Any]:
    await load_session(request)
    request.session.update({"user_id": 42, "cart": ["SKU-00001", "SKU-00002"], "views": 0})
    return {"ok": True}


@app.get("/", response_model=None)
async def catalog(request: Request) -> dict[str, Any]:
    await load_session(request)
    request.session["views"] = int(request.session.get("views", 0)) + 1
    return PAYLOAD
