"""Peer: fastapi-cache2 (README "Quick Start"): RedisBackend, ``@cache(expire=...)``.

Measured on hits: warm-up stores the entry; the origin is slow, so a miss would show.
"""

# mypy: disable-error-code="no-untyped-def"
# (the README's endpoint is unannotated; fastapi-cache2 decodes hits by the return annotation,
#  so annotating it would change the path being measured)

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_cache import FastAPICache
from fastapi_cache.backends.redis import RedisBackend
from fastapi_cache.decorator import cache
from redis import asyncio as aioredis

from bench.scenarios._common import slow_origin, valkey_url


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    redis = aioredis.from_url(valkey_url())
    FastAPICache.init(RedisBackend(redis), prefix="fastapi-cache")
    yield
    await redis.aclose()


app = FastAPI(lifespan=lifespan)


@app.get("/")
@cache(expire=600)
async def catalog():
    return await slow_origin()
