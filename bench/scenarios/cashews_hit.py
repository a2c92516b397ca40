"""Peer: cashews with its Redis backend and the ``@cache(ttl=...)`` decorator (README)."""

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
@cache(ttl="10m")
async def catalog():
    return await slow_origin()
