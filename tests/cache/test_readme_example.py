"""The README's response-cache example, executed (keep the two in sync)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI, Response

from cachemw.cache import CacheInvalidator, CacheMiddleware, CacheSettings, RouteCache
from cachemw.metrics import Metrics
from cachemw.valkey import Valkey


async def test_readme_response_cache_example(valkey: Valkey) -> None:
    # --- README example starts -----------------------------------------------------------
    api = FastAPI()  # in an app: FastAPI(lifespan=valkey.lifespan)
    metrics = Metrics()

    @api.get("/products/{product_id}")
    async def product(product_id: int, response: Response) -> dict[str, Any]:
        response.headers["Cache-Control"] = "public, max-age=60, stale-while-revalidate=30"
        response.headers["Cache-Tag"] = f"product-{product_id}"  # stripped before the client
        return {"id": product_id, "name": "Widget"}

    app = CacheMiddleware(
        api,
        valkey=valkey,
        metrics=metrics,
        settings=CacheSettings(routes={"/static/*": RouteCache(default_ttl=3600)}),
    )
    # After the product changes (e.g. in the PUT handler or a worker):
    #     await CacheInvalidator(valkey).invalidate_tags("product-1")
    # --- README example ends -------------------------------------------------------------
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            miss = await client.get("/products/1")
            hit = await client.get("/products/1")
            assert miss.json() == hit.json() == {"id": 1, "name": "Widget"}
            assert hit.headers["cache-status"].startswith("cachemw; hit")
            assert "cache-tag" not in hit.headers
            assert await CacheInvalidator(valkey).invalidate_tags("product-1") == 1
            again = await client.get("/products/1")
            assert again.headers["cache-status"].startswith("cachemw; fwd=uri-miss")
    finally:
        await app.aclose()
    assert metrics.value("cachemw_cache_hit_total") == 1
