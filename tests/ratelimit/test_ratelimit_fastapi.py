"""Per-route limits as FastAPI dependencies, on real Valkey (standalone and cluster)."""

from __future__ import annotations

import json

import pytest
from fastapi import Depends, FastAPI

from cachemw.http.ratelimit import QUOTA_EXCEEDED_TYPE
from cachemw.ratelimit.fastapi import RateLimiter, install_rate_limit_handler
from cachemw.valkey import Valkey
from tests.ratelimit.conftest import client_for
from tests.ratelimit.sf_parser import check_ratelimit, check_ratelimit_policy


def fastapi_app(valkey: Valkey, *, handler: bool = True) -> FastAPI:
    app = FastAPI()
    if handler:
        install_rate_limit_handler(app)
    limiter = RateLimiter(valkey)
    burst = limiter.limit("2/10s", name="search")
    daily = limiter.limit("3/day", name="search-daily")

    @app.get("/search", dependencies=[Depends(burst), Depends(daily)])
    async def search() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/items/{item_id}", dependencies=[Depends(limiter.limit("1/minute", name="item"))])
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    per_item = limiter.limit("1/minute", name="per-item", per_params=("item_id",))

    @app.get("/own/{item_id}", dependencies=[Depends(per_item)])
    async def own(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/typed/{item_id:int}", dependencies=[Depends(per_item)])
    async def typed(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


async def test_several_limits_on_one_route_each_apply(valkey: Valkey) -> None:
    async with client_for(fastapi_app(valkey)) as client:
        responses = [await client.get("/search") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert json.loads(responses[2].content)["violated-policies"] == ["search"]


async def test_allowed_response_carries_the_fields_of_every_limit(valkey: Valkey) -> None:
    async with client_for(fastapi_app(valkey)) as client:
        response = await client.get("/search")
    policies = check_ratelimit_policy(", ".join(response.headers.get_list("ratelimit-policy")))
    assert set(policies) == {"search", "search-daily"}
    limits = check_ratelimit(", ".join(response.headers.get_list("ratelimit")))
    assert (limits["search"]["r"], limits["search-daily"]["r"]) == (1, 2)


async def test_dependency_rejection_is_a_problem_document(valkey: Valkey) -> None:
    async with client_for(fastapi_app(valkey)) as client:
        for _ in range(2):
            await client.get("/search")
        response = await client.get("/search")
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    assert json.loads(response.content)["type"] == QUOTA_EXCEEDED_TYPE
    assert int(response.headers["retry-after"]) >= 1


async def test_without_the_handler_the_429_still_has_retry_after(valkey: Valkey) -> None:
    async with client_for(fastapi_app(valkey, handler=False)) as client:
        for _ in range(2):
            await client.get("/search")
        response = await client.get("/search")
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["cache-control"] == "no-store"
    assert int(response.headers["content-length"]) == len(response.content)


async def test_dependency_bucket_is_the_route_template(valkey: Valkey) -> None:
    async with client_for(fastapi_app(valkey)) as client:
        statuses = [(await client.get(f"/items/{n}")).status_code for n in (1, 2)]
    assert statuses == [200, 429]


async def test_dependency_per_param_buckets(valkey: Valkey) -> None:
    async with client_for(fastapi_app(valkey)) as client:
        statuses = [(await client.get(f"/own/{n}")).status_code for n in (1, 2, 1)]
    assert statuses == [200, 200, 429]


def test_dependency_rejects_an_invalid_limit(valkey: Valkey) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimiter(valkey).limit("lots", name="x")


async def test_per_param_dependency_counts_one_int_however_it_is_spelled(valkey: Valkey) -> None:
    async with client_for(fastapi_app(valkey)) as client:
        statuses = [(await client.get(f"/typed/{n}")).status_code for n in ("7", "007", "8")]
    assert statuses == [200, 429, 200]
