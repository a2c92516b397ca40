"""Peer: cashews hit behind its FastAPI middlewares (README "Fastapi" example): delete,
ETag and Cache-Control middlewares, ``cache_control_ttl`` on the endpoint."""

# mypy: disable-error-code="no-untyped-def"

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cashews import cache
from cashews.contrib.fastapi import (
    CacheDeleteMiddleware,
    CacheEtagMiddleware,
    CacheRequestControlMiddleware,
    cache_control_ttl,
)
from fastapi import FastAPI

from bench.scenarios._common import slow_origin, valkey_url


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    cache.setup(valkey_url())
    yield
    await cache.close()


app = FastAPI(lifespan=lifespan)
app.add_middleware(CacheDeleteMiddleware)
app.add_middleware(CacheEtagMiddleware)
app.add_middleware(CacheRequestControlMiddleware)


@app.get("/")
@cache(ttl=cache_control_ttl(default="10m"))
async def catalog():
    return await slow_origin()
