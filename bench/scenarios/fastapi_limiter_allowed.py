"""Peer: fastapi-limiter 0.2 (README "Quick Start"): a ``RateLimiter`` dependency on the
route, its pyrate-limiter ``Limiter`` backed by pyrate-limiter's ``RedisBucket`` (their
documented Redis backend) on the same Valkey; allowed path only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import Depends, FastAPI
from fastapi_limiter.depends import RateLimiter
from pyrate_limiter import Duration, Limiter, Rate, RedisBucket
from redis.asyncio import Redis

from bench.scenarios._common import PAYLOAD, valkey_url

ALLOWED_RATE = Rate(1_000_000, Duration.MINUTE)

# RedisBucket.init must be awaited (it loads its Lua script), so the Limiter is attached in the
# lifespan; building one at import would also start pyrate-limiter's leak thread.
rate_limiter = RateLimiter(limiter=cast(Limiter, None))


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    redis = Redis.from_url(valkey_url())
    bucket = await RedisBucket.init([ALLOWED_RATE], redis, "fastapi-limiter:bench")
    rate_limiter.limiter = Limiter(bucket)
    yield
    await redis.aclose()


app = FastAPI(lifespan=lifespan)


@app.get("/", dependencies=[Depends(rate_limiter)], response_model=None)
async def catalog() -> dict[str, Any]:
    return PAYLOAD
