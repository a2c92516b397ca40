"""Peer: slowapi (README / docs "Quick start") with Redis storage, on the allowed path.

The limit is far above what the bench can send, so every request is allowed; the cost
measured is one limit check per request. slowapi's Redis storage is synchronous (``limits``'
``redis://``), which is its documented usage.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address

from bench.scenarios._common import PAYLOAD, valkey_url_at_import

ALLOWED_LIMIT = "1000000/minute"

limiter = Limiter(key_func=get_remote_address, storage_uri=valkey_url_at_import())
app = FastAPI()
app.state.limiter = limiter
app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]


@app.get("/", response_model=None)
@limiter.limit(ALLOWED_LIMIT)
async def catalog(request: Request) -> dict[str, Any]:
    return PAYLOAD
