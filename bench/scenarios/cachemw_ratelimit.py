"""cachemw ``RateLimitMiddleware`` (sliding window, one EVALSHA per request) on the baseline
endpoint, allowed path: the limit is far above what the bench can send."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from bench.scenarios._common import PAYLOAD, valkey_url_at_import
from cachemw.ratelimit import RateLimitMiddleware, Rule
from cachemw.valkey import Valkey

valkey = Valkey.from_url(valkey_url_at_import())
api = FastAPI(lifespan=valkey.lifespan)


@api.get("/", response_model=None)
async def catalog() -> dict[str, Any]:
    return PAYLOAD


app = RateLimitMiddleware(
    api, valkey=valkey, rules=[Rule(name="catalog", limit="1000000/minute", routes=("/",))]
)
