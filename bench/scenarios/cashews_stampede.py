"""Peer: cashews under a stampede: many simultaneous requests for one cold key (README usage,
``@cache(ttl=...)``; its default in-process protection coalesces identical concurrent calls)."""

# mypy: disable-error-code="no-untyped-def"

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cashews import cache
from fastapi import FastAPI

from bench.scenarios._common import CountingOrigin, add_origin_calls_route, valkey_url

origin = CountingOrigin()


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    cache.setup(valkey_url())
    yield
    await cache.close()


app = FastAPI(lifespan=lifespan)
add_origin_calls_route(app.router, origin)


@app.get("/items/{item_id}")
@cache(ttl="10m")
async def item(item_id: str):
    return await origin()
