"""RFC 9111 §3/§4.1 storage rules, observed through the middleware on real Valkey."""

from __future__ import annotations

from typing import Any

import pytest

from cachemw.cache import CacheSettings, RouteCache
from cachemw.cache.store import FEATURE, CacheStore
from cachemw.http.dates import format_http_date
from cachemw.valkey import Valkey, ValkeySettings
from cachemw.valkey.keyspace import digest
from tests.cache.conftest import CacheHarness, build_harness, commands_processed


async def get_twice(h: CacheHarness, path: str, **kwargs: Any) -> int:
    await h.client.get(path, **kwargs)
    await h.client.get(path, **kwargs)
    return h.origin.count(path)


async def test_fresh_response_is_served_from_cache_without_the_app(h: CacheHarness) -> None:
    h.origin.reply("/p", headers=[("cache-control", "max-age=60")], body=b"stored body")
    first = await h.client.get("/p")
    second = await h.client.get("/p")
    assert h.origin.count("/p") == 1
    assert second.content == first.content == b"stored body"
    assert second.headers["cache-status"].startswith("cachemw; hit")


@pytest.mark.parametrize(
    ("name", "status", "headers"),
    [
        ("no-store", 200, [("cache-control", "no-store, max-age=60")]),
        ("private", 200, [("cache-control", "private, max-age=60")]),
        ("set-cookie", 200, [("cache-control", "max-age=60"), ("set-cookie", "sid=1")]),
        ("vary-star", 200, [("cache-control", "max-age=60"), ("vary", "*")]),
        ("partial", 206, [("cache-control", "max-age=60"), ("content-range", "bytes 0-1/9")]),
        ("rate-limited", 429, [("cache-control", "max-age=60")]),
        ("unavailable", 503, [("cache-control", "max-age=60")]),
        ("no-freshness", 200, []),
        ("informational-304", 304, [("cache-control", "max-age=60")]),
    ],
)
async def test_unstorable_response_is_not_stored(
    h: CacheHarness, name: str, status: int, headers: list[tuple[str, str]]
) -> None:
    h.origin.reply("/u", status=status, headers=headers)
    assert await get_twice(h, "/u") == 2


async def test_response_to_authorized_request_is_not_stored_without_opt_in(
    h: CacheHarness,
) -> None:
    h.origin.reply("/me", headers=[("cache-control", "public, max-age=60")])
    assert await get_twice(h, "/me", headers={"authorization": "Bearer x"}) == 2


@pytest.mark.parametrize(
    ("cache_control", "stored"),
    [("max-age=60", False), ("public, max-age=60", True), ("s-maxage=60", True)],
)
async def test_authorized_route_stores_only_public_or_s_maxage_responses(
    valkey: Valkey, cache_control: str, stored: bool
) -> None:
    settings = CacheSettings(routes={"/me": RouteCache(allow_authorization=True)})
    async with build_harness(valkey, settings) as h:
        h.origin.reply("/me", headers=[("cache-control", cache_control)])
        calls = await get_twice(h, "/me", headers={"authorization": "Bearer x"})
        assert calls == (1 if stored else 2)


async def test_default_ttl_applies_only_to_routes_that_opt_in(valkey: Valkey) -> None:
    settings = CacheSettings(routes={"/opted/*": RouteCache(default_ttl=30)})
    async with build_harness(valkey, settings) as h:
        h.origin.reply("/opted/x", headers=[])
        h.origin.reply("/other", headers=[])
        assert await get_twice(h, "/opted/x") == 1
        assert await get_twice(h, "/other") == 2


async def test_set_cookie_response_is_stored_only_on_routes_that_allow_it(valkey: Valkey) -> None:
    settings = CacheSettings(routes={"/c": RouteCache(allow_set_cookie=True)})
    async with build_harness(valkey, settings) as h:
        h.origin.reply("/c", headers=[("cache-control", "max-age=60"), ("set-cookie", "a=1")])
        await h.client.get("/c")
        h.client.cookies.clear()  # a client sending the cookie back would bypass the cache
        second = await h.client.get("/c")
        assert h.origin.count("/c") == 1
        assert second.headers["set-cookie"] == "a=1"


async def test_head_request_is_answered_from_the_stored_get_response(h: CacheHarness) -> None:
    h.origin.reply("/h", body=b"0123456789")
    await h.client.get("/h")
    head = await h.client.head("/h")
    assert h.origin.count("/h") == 1
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "10"


async def test_head_miss_is_not_stored_as_the_get_response(h: CacheHarness) -> None:
    h.origin.reply("/h", body=b"full body")
    await h.client.head("/h")
    get = await h.client.get("/h")
    assert get.content == b"full body"
    assert h.origin.count("/h") == 2


async def test_vary_stores_one_variant_per_varied_request_value(h: CacheHarness) -> None:
    h.origin.reply(
        "/v",
        headers=[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        body=lambda scope: dict(scope["headers"]).get(b"accept-language", b"none"),
    )
    en = await h.client.get("/v", headers={"accept-language": "en"})
    de = await h.client.get("/v", headers={"accept-language": "de"})
    en_again = await h.client.get("/v", headers={"accept-language": "en"})
    de_again = await h.client.get("/v", headers={"accept-language": "de"})
    assert (en.content, de.content) == (b"en", b"de")
    assert (en_again.content, de_again.content) == (b"en", b"de")
    assert h.origin.count("/v") == 2
    assert "vary-miss" in de.headers["cache-status"]


async def test_vary_absent_header_differs_from_empty_header(h: CacheHarness) -> None:
    h.origin.reply("/v", headers=[("cache-control", "max-age=60"), ("vary", "x-mode")])
    await h.client.get("/v")
    await h.client.get("/v", headers={"x-mode": ""})
    assert h.origin.count("/v") == 2


async def test_hop_by_hop_fields_are_not_stored_and_duplicates_are_kept(h: CacheHarness) -> None:
    h.origin.reply(
        "/hop",
        headers=[
            ("cache-control", "max-age=60"),
            ("connection", "x-private-hop"),
            ("x-private-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("link", "</a>; rel=preload"),
            ("link", "</b>; rel=preload"),
        ],
    )
    await h.client.get("/hop")
    hit = await h.client.get("/hop")
    assert "x-private-hop" not in hit.headers
    assert "keep-alive" not in hit.headers
    assert hit.headers.get_list("link") == ["</a>; rel=preload", "</b>; rel=preload"]


async def test_proxy_authentication_fields_are_not_stored(h: CacheHarness) -> None:
    # RFC 9111 §3.1: they concern the connection to one proxy, not the stored response.
    h.origin.reply(
        "/proxied",
        headers=[
            ("cache-control", "public, max-age=60"),
            ("proxy-authenticate", 'Basic realm="edge"'),
            ("proxy-authentication-info", "nextnonce=abc"),
        ],
    )
    await h.client.get("/proxied")
    hit = await h.client.get("/proxied")
    assert "hit" in hit.headers["cache-status"]
    assert "proxy-authenticate" not in hit.headers
    assert "proxy-authentication-info" not in hit.headers


async def test_entry_of_unknown_version_is_a_miss(h: CacheHarness, valkey_sync: Any) -> None:
    await get_twice(h, "/x")
    for key in valkey_sync.scan_iter(match="cachemw:cache:*"):
        if valkey_sync.type(key) == b"hash":
            for field in valkey_sync.hkeys(key):
                if field.startswith(b"e:"):
                    valkey_sync.hset(key, field, b"CM\x63\x00garbage")
    await h.client.get("/x")
    assert h.origin.count("/x") == 2


async def test_hit_is_one_valkey_command(h: CacheHarness, valkey_sync: Any) -> None:
    await h.client.get("/one")
    await h.client.get("/one")
    before = commands_processed(valkey_sync)
    hit = await h.client.get("/one")
    assert "hit" in hit.headers["cache-status"]
    assert commands_processed(valkey_sync) - before == 1


@pytest.mark.parametrize("age", ["abc", "-10", "1.5", "0, 0", "5;x=1"])
async def test_invalid_or_list_age_makes_the_response_stale(h: CacheHarness, age: str) -> None:
    h.origin.reply("/age", headers=[("cache-control", "max-age=3600"), ("age", age)])
    await h.client.get("/age")
    await h.client.get("/age")
    assert h.origin.count("/age") == 2


async def test_two_age_lines_make_the_response_stale(h: CacheHarness) -> None:
    h.origin.reply("/age", headers=[("cache-control", "max-age=3600"), ("age", "0"), ("age", "0")])
    assert await get_twice(h, "/age") == 2


@pytest.mark.parametrize(
    ("headers", "stored"),
    [
        ([("cache-control", "max-age=60"), ("surrogate-control", "no-store")], False),
        ([("cache-control", "no-store"), ("surrogate-control", "max-age=60;edge")], True),
        ([("cache-control", "no-store"), ("cdn-cache-control", "max-age=60")], True),
        (
            [
                ("cache-control", "max-age=60"),
                ("surrogate-control", "max-age=60"),
                ("cdn-cache-control", "no-store"),
            ],
            False,
        ),
    ],
)
async def test_gateway_targeted_cache_control_replaces_cache_control(
    h: CacheHarness, headers: list[tuple[str, str]], stored: bool
) -> None:
    h.origin.reply("/g", headers=headers)
    assert await get_twice(h, "/g") == (1 if stored else 2)


@pytest.mark.parametrize(
    ("headers", "stored"),
    [
        # Not a Structured Field Dictionary (RFC 8941): the whole field is ignored and
        # Cache-Control applies (RFC 9213 §2.1).
        ([("cache-control", "no-store"), ("cdn-cache-control", "max-age=60,,")], False),
        ([("cache-control", "no-store"), ("cdn-cache-control", 'max-age="60')], False),
        ([("cache-control", "max-age=60"), ("cdn-cache-control", "no-store;;")], True),
        # Valid: it applies, whatever Cache-Control says.
        ([("cache-control", "no-store"), ("cdn-cache-control", "max-age=60, public")], True),
    ],
)
async def test_invalid_cdn_cache_control_is_ignored(
    h: CacheHarness, headers: list[tuple[str, str]], stored: bool
) -> None:
    h.origin.reply("/g", headers=headers)
    assert await get_twice(h, "/g") == (1 if stored else 2)


async def test_cdn_cache_control_is_used_instead_of_expires(h: CacheHarness) -> None:
    # RFC 9213 §2.1: instead of Cache-Control *and* Expires. Without a lifetime in the
    # targeted field the response has no explicit freshness, however far Expires is.
    expires = format_http_date(h.clock() + 600).decode()
    h.origin.reply("/g", headers=[("expires", expires), ("cdn-cache-control", "public")])
    assert await get_twice(h, "/g") == 2


async def test_invalid_cdn_cache_control_leaves_expires_in_force(h: CacheHarness) -> None:
    expires = format_http_date(h.clock() + 600).decode()
    h.origin.reply("/g", headers=[("expires", expires), ("cdn-cache-control", "public,,")])
    assert await get_twice(h, "/g") == 1


async def test_surrogate_control_never_reaches_the_client(h: CacheHarness) -> None:
    h.origin.reply("/g", headers=[("surrogate-control", "max-age=60")])
    miss = await h.client.get("/g")
    hit = await h.client.get("/g")
    assert "surrogate-control" not in miss.headers
    assert "surrogate-control" not in hit.headers
    assert "hit" in hit.headers["cache-status"]


@pytest.mark.parametrize("prefix", ["cachemw", "shop.v2-eu"])
def test_entry_and_lock_keys_follow_the_keyspace_naming(prefix: str) -> None:
    valkey = Valkey(ValkeySettings(url="redis://127.0.0.1:1/0", key_prefix=prefix))
    store = CacheStore(valkey)
    primary, variant = digest(b"GET https://shop.example/"), digest(b"variant")
    assert store.hash_key(primary) == valkey.keyspace.key(FEATURE, primary)
    assert store.lock_key(primary, variant) == valkey.keyspace.key(
        FEATURE, primary, "lock", variant
    )
