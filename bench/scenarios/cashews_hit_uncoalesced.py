"""Peer: cashews hit with ``protected=False`` (a public ``@cache`` parameter, not in the
README): no in-process coalescing of concurrent identical calls, so every request pays its
own Valkey read, as a load over many distinct keys would. ``cashews_hit`` is the default."""

# mypy: disable-error-code="no-untyped-def"
# (unannotated as in the README: cashews caches the endpoint's return value as is)

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cashews import cache
from fastapi import FastAPI

from bench.scenarios._common import slow_origin, valkey_url


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    cache.setup(valkey_url())
    yield
    await cache.close()


app = FastAPI(lifespan=lifespan)


@app.get("/")
@cache(ttl="10m", protected=False)
async def catalog():
    return await slow_origin()
