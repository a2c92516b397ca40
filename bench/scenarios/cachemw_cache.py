"""cachemw response cache in front of a slow FastAPI origin (``CacheMiddleware``).

The origin says ``Cache-Control: public, max-age=600``; after warm-up every request is a
hit (one Valkey round trip, bytes out). Also serves the 304-revalidation scenario: a client
sending back the stored ETag gets ``304 Not Modified`` from the cache.
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


app = CacheMiddleware(api, valkey=valkey, settings=CacheSettings())
