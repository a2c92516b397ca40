"""What every scenario app shares: the ~1 KB payload, and where Valkey is."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Router

VALKEY_URL_ENV: Final = "BENCH_VALKEY_URL"
ORIGIN_CALLS_PATH: Final = "/_bench/origin-calls"
SLOW_ORIGIN_SECONDS: Final = 0.05  # an origin slow enough that a cache miss is obvious in req/s


def _product(index: int) -> dict[str, Any]:
    return {
        "sku": f"SKU-{index:05d}",
        "name": f"Widget number {index}",
        "price_cents": 1999 + index * 7,
        "in_stock": index % 3 != 0,
        "tags": ["hardware", "blue"],
    }


# Built once at import (a constant, never mutated): every scenario returns this same document,
# so the only difference between scenarios is the machinery around it.
PAYLOAD: Final[dict[str, Any]] = {
    "catalog": "spring",
    "page": 1,
    "per_page": 9,
    "total": 1000,
    "products": [_product(i) for i in range(9)],
}
PAYLOAD_BYTES: Final = json.dumps(PAYLOAD, separators=(",", ":")).encode()


def valkey_url() -> str:
    """The Valkey URL the driver started (``BENCH_VALKEY_URL``); read at app start-up."""
    url = os.environ.get(VALKEY_URL_ENV)
    if not url:
        raise RuntimeError(f"{VALKEY_URL_ENV} is not set: run scenarios through `python -m bench`")
    return url


async def slow_origin() -> dict[str, Any]:
    """The expensive thing a cache is there to avoid: only ever called on a miss."""
    await asyncio.sleep(SLOW_ORIGIN_SECONDS)
    return PAYLOAD


def valkey_url_at_import(default: str = "redis://127.0.0.1:6379/0") -> str:
    """For peers whose documented set-up takes the URL when the app is built (slowapi's
    ``Limiter(storage_uri=...)``, starsessions' ``RedisStore``). Building a redis-py client
    opens no connection, so importing the module stays free of I/O; the default only lets
    tests import the app without a server."""
    return os.environ.get(VALKEY_URL_ENV) or default


class CountingOrigin:
    """``slow_origin`` that counts its calls, for stampede scenarios (one per app module)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return await slow_origin()


def add_origin_calls_route(router: Router, origin: CountingOrigin) -> None:
    """``GET /_bench/origin-calls`` -> ``{"calls": N}``, never stored by any cache."""

    async def origin_calls(_: Request) -> JSONResponse:
        return JSONResponse({"calls": origin.calls}, headers={"Cache-Control": "no-store"})

    router.add_route(ORIGIN_CALLS_PATH, origin_calls, methods=["GET"])
