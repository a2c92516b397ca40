"""Peer: fastapi-cache2 under a stampede: many simultaneous requests for one cold key
(README usage, ``@cache(expire=...)`` on a path-parameter endpoint)."""

# mypy: disable-error-code="no-untyped-def"

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_cache import FastAPICache
from fastapi_cache.backends.redis import RedisBackend
from fastapi_cache.decorator import cache
from redis import asyncio as aioredis

from bench.scenarios._common import CountingOrigin, add_origin_calls_route, valkey_url

origin = CountingOrigin()


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    redis = aioredis.from_url(valkey_url())
    FastAPICache.init(RedisBackend(redis), prefix="fastapi-cache-stampede")
    yield
    await redis.aclose()


app = FastAPI(lifespan=lifespan)
add_origin_calls_route(app.router, origin)


@app.get("/items/{item_id}")
@cache(expire=600)
async def item(item_id: str):
    return await origin()
