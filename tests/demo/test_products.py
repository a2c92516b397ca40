"""The cached product API: hits with Age, 304, tags, optimistic concurrency (412/428)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.demo.server import in_process, patient_config

JSON = {"content-type": "application/json"}


def is_hit(response: httpx.Response) -> bool:
    params = [p.strip() for p in response.headers.get("cache-status", "").split(";")]
    return "hit" in params


async def test_seeded_products_have_ids_1_to_20_with_the_documented_fields(
    client: httpx.AsyncClient,
) -> None:
    products = (await client.get("/products")).json()
    assert [p["id"] for p in products] == list(range(1, 21))
    for product in products:
        assert set(product) == {"id", "name", "price", "description"}
        assert isinstance(product["price"], int | float)


async def test_unknown_product_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/products/21")).status_code == 404


@pytest.mark.parametrize("product_id", ["0", "-1", "abc", "99999999999999999999999"])
async def test_malformed_product_id_is_422_not_500(
    client: httpx.AsyncClient, product_id: str
) -> None:
    assert (await client.get(f"/products/{product_id}")).status_code == 422


async def test_second_get_of_a_product_is_a_cache_hit_with_age(client: httpx.AsyncClient) -> None:
    first = await client.get("/products/1")
    second = await client.get("/products/1")
    assert not is_hit(first), first.headers
    assert "stored" in first.headers["cache-status"]
    assert is_hit(second), second.headers
    assert "age" in second.headers
    assert second.json() == first.json()


async def test_miss_and_hit_each_carry_exactly_one_date(client: httpx.AsyncClient) -> None:
    first = await client.get("/products/8")
    second = await client.get("/products/8")
    assert len(first.headers.get_list("date")) == 1
    assert len(second.headers.get_list("date")) == 1


async def test_product_is_shared_cacheable_with_stale_while_revalidate(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/products/1")
    directives = {d.strip() for d in response.headers["cache-control"].split(",")}
    assert {"public", "s-maxage=60", "stale-while-revalidate=30"} <= directives


async def test_cache_tags_never_reach_the_client(client: httpx.AsyncClient) -> None:
    await client.get("/products/1")
    for response in (await client.get("/products/1"), await client.get("/products")):
        assert "cache-tag" not in response.headers


async def test_if_none_match_with_the_current_etag_is_304(client: httpx.AsyncClient) -> None:
    etag = (await client.get("/products/1")).headers["etag"]
    response = await client.get("/products/1", headers={"if-none-match": etag})
    assert response.status_code == 304
    assert response.headers["etag"] == etag


async def test_logged_in_visitors_get_products_from_the_cache(client: httpx.AsyncClient) -> None:
    await client.post("/login", json={"username": "alice"})
    assert client.cookies  # the session cookie goes with every request from now on
    await client.get("/products/4")
    assert is_hit(await client.get("/products/4"))


async def test_put_with_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    before = await client.get("/products/2")
    response = await client.put("/products/2", json={"price": 1.0}, headers={"if-match": '"v999"'})
    assert response.status_code == 412
    assert (await client.get("/products/2")).json() == before.json()


async def test_put_without_if_match_is_428(client: httpx.AsyncClient) -> None:
    response = await client.put("/products/2", json={"price": 1.0})
    assert response.status_code == 428


async def test_put_with_the_current_etag_updates_and_the_next_get_is_a_fresh_miss(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/products/3")
    etag = (await client.get("/products/3")).headers["etag"]
    response = await client.put(
        "/products/3", json={"name": "Renamed", "price": 42.5}, headers={"if-match": etag}
    )
    assert response.status_code == 200
    assert response.headers["etag"] != etag
    after = await client.get("/products/3")
    assert not is_hit(after), after.headers
    assert after.json()["name"] == "Renamed"
    assert after.json()["price"] == 42.5
    assert after.headers["etag"] == response.headers["etag"]


async def test_an_etag_used_once_is_stale_for_a_second_put(client: httpx.AsyncClient) -> None:
    etag = (await client.get("/products/5")).headers["etag"]
    first = await client.put("/products/5", json={"price": 5.0}, headers={"if-match": etag})
    second = await client.put("/products/5", json={"price": 6.0}, headers={"if-match": etag})
    assert (first.status_code, second.status_code) == (200, 412)
    assert (await client.get("/products/5")).json()["price"] == 5.0


async def test_put_invalidates_the_product_tag_on_the_cached_list(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/products")
    assert is_hit(await client.get("/products"))
    etag = (await client.get("/products/6")).headers["etag"]
    await client.put("/products/6", json={"price": 66.0}, headers={"if-match": etag})
    listing = await client.get("/products")
    assert not is_hit(listing), listing.headers
    assert listing.json()[5]["price"] == 66.0


async def test_put_to_a_missing_product_with_if_match_is_412(client: httpx.AsyncClient) -> None:
    response = await client.put("/products/21", json={"price": 1.0}, headers={"if-match": '"v1"'})
    assert response.status_code == 412


async def test_put_to_a_missing_product_without_if_match_is_404(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.put("/products/21", json={"price": 1.0})).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"colour": "red"},
        {"price": -1},
        {"price": "free"},
        {"name": ""},
        {"name": "x" * 101},
        {"description": "x" * 2001},
    ],
    ids=["empty", "unknown-field", "negative", "not-a-number", "empty-name", "long", "long-desc"],
)
async def test_invalid_update_is_422(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    etag = (await client.get("/products/7")).headers["etag"]
    response = await client.put("/products/7", json=body, headers={"if-match": etag})
    assert response.status_code == 422


async def test_non_json_update_is_422(client: httpx.AsyncClient) -> None:
    etag = (await client.get("/products/7")).headers["etag"]
    response = await client.put(
        "/products/7", content=b"{not json", headers={**JSON, "if-match": etag}
    )
    assert response.status_code == 422


async def test_concurrent_fetches_of_a_cold_product_run_the_query_once(valkey_url: str) -> None:
    config = patient_config(valkey_url, read_delay=0.05)
    async with in_process(config) as (demo, client):
        responses = await asyncio.gather(*(client.get("/products/9") for _ in range(20)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert demo.metrics.total("cachemw_cache_miss_total") == 1
    served_from_cache = demo.metrics.total("cachemw_cache_coalesced_total") + demo.metrics.total(
        "cachemw_cache_hit_total"
    )
    assert served_from_cache == 19
