"""cachemw ``HeadersMiddleware`` on the baseline endpoint: a route ``cache_policy``, a strong
ETag computed from the body, and If-None-Match answered with 304. No Valkey involved."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from bench.scenarios._common import PAYLOAD
from cachemw.headers import HeadersMiddleware, cache_policy

api = FastAPI()


@api.get("/", response_model=None)
@cache_policy(public=True, max_age=60)
async def catalog() -> dict[str, Any]:
    return PAYLOAD


app = HeadersMiddleware(api)
