"""Invalidation: unsafe methods (RFC 9111 §4.4), URLs, prefixes and tags."""

from __future__ import annotations

from typing import Any

import pytest

from cachemw.cache import CacheInvalidator, CacheSettings, RouteCache
from cachemw.valkey import Valkey
from tests.cache.conftest import CacheHarness, build_harness
from tests.support.servers import all_keys


async def warm(h: CacheHarness, *paths: str, **kwargs: Any) -> None:
    for path in paths:
        await h.client.get(path, **kwargs)
        await h.client.get(path, **kwargs)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_successful_unsafe_method_invalidates_the_target_uri(
    h: CacheHarness, method: str
) -> None:
    await warm(h, "/item")
    h.origin.reply("/item", status=204, headers=[])
    await h.client.request(method, "/item")
    h.origin.reply("/item")
    await h.client.get("/item")
    assert h.origin.count("/item") == 3  # fill, unsafe request, refill


@pytest.mark.parametrize("status", [400, 404, 500])
async def test_failed_unsafe_method_does_not_invalidate(h: CacheHarness, status: int) -> None:
    await warm(h, "/item")
    h.origin.reply("/item", status=status, headers=[])
    await h.client.post("/item")
    h.origin.reply("/item")
    await h.client.get("/item")
    assert h.origin.count("/item") == 2


async def test_unsafe_method_invalidates_every_variant(h: CacheHarness) -> None:
    h.origin.reply("/v", headers=[("cache-control", "max-age=60"), ("vary", "accept-language")])
    await warm(h, "/v", headers={"accept-language": "en"})
    await warm(h, "/v", headers={"accept-language": "de"})
    h.origin.reply("/v", status=200, headers=[])
    await h.client.post("/v")
    h.origin.reply("/v", headers=[("cache-control", "max-age=60"), ("vary", "accept-language")])
    await h.client.get("/v", headers={"accept-language": "en"})
    await h.client.get("/v", headers={"accept-language": "de"})
    assert h.origin.count("/v") == 5


async def test_same_origin_location_is_invalidated(h: CacheHarness) -> None:
    await warm(h, "/list", "/other")
    h.origin.reply(
        "/create",
        status=201,
        headers=[("location", "/list"), ("content-location", "http://elsewhere.test/other")],
    )
    await h.client.post("/create")
    await h.client.get("/list")
    await h.client.get("/other")
    assert h.origin.count("/list") == 2  # invalidated
    assert h.origin.count("/other") == 1  # another origin's URI is left alone


async def test_invalidate_url_removes_all_variants(h: CacheHarness, valkey: Valkey) -> None:
    await warm(h, "/a?x=1", "/b")
    removed = await CacheInvalidator(valkey).invalidate_url("http://shop.test/a?x=1")
    assert removed == 1
    await h.client.get("/a?x=1")
    await h.client.get("/b")
    assert h.origin.count("/a") == 2
    assert h.origin.count("/b") == 1


async def test_invalidate_prefix_removes_matching_urls_only(
    h: CacheHarness, valkey: Valkey
) -> None:
    await warm(h, "/api/one", "/api/two", "/static/app.js")
    removed = await CacheInvalidator(valkey).invalidate_prefix("http://shop.test/api/")
    assert removed == 2
    for path in ("/api/one", "/api/two", "/static/app.js"):
        await h.client.get(path)
    assert h.origin.count("/api/one") == h.origin.count("/api/two") == 2
    assert h.origin.count("/static/app.js") == 1


async def test_invalidate_tags_from_response_header(h: CacheHarness, valkey: Valkey) -> None:
    h.origin.reply(
        "/p1", headers=[("cache-control", "max-age=60"), ("cache-tag", "product-1 list")]
    )
    h.origin.reply("/p2", headers=[("cache-control", "max-age=60"), ("cache-tag", "product-2")])
    await warm(h, "/p1", "/p2")
    removed = await CacheInvalidator(valkey).invalidate_tags("product-1")
    assert removed == 1
    await h.client.get("/p1")
    await h.client.get("/p2")
    assert h.origin.count("/p1") == 2
    assert h.origin.count("/p2") == 1


async def test_invalidate_tags_from_route_setting(valkey: Valkey) -> None:
    settings = CacheSettings(routes={"/catalog/*": RouteCache(tags=("catalog",))})
    async with build_harness(valkey, settings) as h:
        await warm(h, "/catalog/a", "/catalog/b", "/home")
        assert await CacheInvalidator(valkey).invalidate_tags("catalog") == 2
        for path in ("/catalog/a", "/catalog/b", "/home"):
            await h.client.get(path)
        assert h.origin.count("/catalog/a") == h.origin.count("/catalog/b") == 2
        assert h.origin.count("/home") == 1


async def test_tag_index_expires_with_its_entries(h: CacheHarness, valkey_sync: Any) -> None:
    h.origin.reply("/t", headers=[("cache-control", "max-age=60"), ("cache-tag", "t")])
    await warm(h, "/t")
    tag_keys = [k for k in all_keys(valkey_sync) if b":cache-tag:" in k]
    assert tag_keys
    assert all(0 < valkey_sync.pttl(k) <= 60_000 + 60_000 for k in tag_keys)


@pytest.mark.parametrize(
    "header", ["x-purge", "surrogate-key", "x-invalidate", "x-cache-purge", "cache-tag"]
)
async def test_no_client_header_can_purge(h: CacheHarness, header: str) -> None:
    await warm(h, "/keep")
    response = await h.client.get("/keep", headers={header: "all"})
    await h.client.get("/keep")
    assert response.headers["cache-status"].startswith("cachemw; hit")
    assert h.origin.count("/keep") == 1


async def test_invalidate_url_rejects_relative_urls(valkey: Valkey) -> None:
    with pytest.raises(ValueError, match="absolute"):
        await CacheInvalidator(valkey).invalidate_url("/relative")
