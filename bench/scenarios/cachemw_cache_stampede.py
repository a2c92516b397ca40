"""cachemw response cache under a stampede: many simultaneous requests for one cold key
(one origin call expected, the others wait for its fill)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response

from bench.scenarios._common import CountingOrigin, add_origin_calls_route, valkey_url_at_import
from cachemw.cache import CacheMiddleware, CacheSettings
from cachemw.valkey import Valkey

origin = CountingOrigin()
valkey = Valkey.from_url(valkey_url_at_import())
api = FastAPI(lifespan=valkey.lifespan)
add_origin_calls_route(api.router, origin)


@api.get("/items/{item_id}", response_model=None)
async def item(item_id: str, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=600"
    return await origin()


app = CacheMiddleware(api, valkey=valkey, settings=CacheSettings())
