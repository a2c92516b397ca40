"""cachemw response cache with the opt-in near cache (kept coherent by CLIENT TRACKING).

Same origin as ``cachemw_cache``; after warm-up hits are served from process memory, with
one HMGET per URL per ``near_cache_ttl`` (1 s) instead of one per request.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response

from bench.scenarios._common import slow_origin, valkey_url_at_import
from cachemw.cache import CacheMiddleware, CacheSettings
from cachemw.valkey import Valkey

# Constructing the client opens no connection; the lifespan pings and closes it.
valkey = Valkey.from_url(valkey_url_at_import())
api = FastAPI(lifespan=valkey.lifespan)


@api.get("/", response_model=None)
async def catalog(response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=600"
    response.headers["ETag"] = '"catalog-v1"'
    return await slow_origin()


app = CacheMiddleware(api, valkey=valkey, settings=CacheSettings(near_cache_entries=1000))
