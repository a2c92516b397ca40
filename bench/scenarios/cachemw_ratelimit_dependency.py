"""cachemw rate limit as a FastAPI dependency (``cachemw.ratelimit.fastapi.RateLimiter``), the
shape slowapi and fastapi-limiter users know; allowed path."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI

from bench.scenarios._common import PAYLOAD, valkey_url_at_import
from cachemw.ratelimit.fastapi import RateLimiter, install_rate_limit_handler
from cachemw.valkey import Valkey

valkey = Valkey.from_url(valkey_url_at_import())
limiter = RateLimiter(valkey)
app = FastAPI(lifespan=valkey.lifespan)
install_rate_limit_handler(app)


@app.get(
    "/",
    dependencies=[Depends(limiter.limit("1000000/minute", name="catalog"))],
    response_model=None,
)
async def catalog() -> dict[str, Any]:
    return PAYLOAD
