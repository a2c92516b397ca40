"""Safety defaults against cache poisoning and cross-user leaks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cachemw.cache import DEFAULT_FORWARDING_HEADERS, CacheSettings, RouteCache
from cachemw.valkey import Valkey
from tests.cache.conftest import CacheHarness, build_harness

ATTACKER = "evil.example"


def reflect_request(scope: dict[str, Any]) -> bytes:
    """An origin that (unsafely) builds its page from every request header and the path."""
    headers = b";".join(b"%s=%s" % pair for pair in scope["headers"] if pair[0] != b"host")
    return scope.get("raw_path", b"") + b"|" + headers


@pytest.mark.parametrize("header", DEFAULT_FORWARDING_HEADERS)
async def test_forwarding_header_cannot_poison_a_clean_request(
    h: CacheHarness, header: str
) -> None:
    h.origin.reply("/page", body=reflect_request)
    attack = await h.client.get("/page", headers={header: ATTACKER})
    assert "fwd=bypass" in attack.headers["cache-status"]
    clean = await h.client.get("/page")
    again = await h.client.get("/page")
    assert ATTACKER.encode() not in clean.content
    assert ATTACKER.encode() not in again.content


async def test_keyed_forwarding_header_gets_its_own_entry(valkey: Valkey) -> None:
    settings = CacheSettings(keyed_headers=("x-forwarded-proto",))
    async with build_harness(valkey, settings) as h:
        h.origin.reply("/page", body=reflect_request)
        first = await h.client.get("/page", headers={"x-forwarded-proto": "evil"})
        clean = await h.client.get("/page")
        again = await h.client.get("/page", headers={"x-forwarded-proto": "evil"})
        assert b"evil" in first.content
        assert b"evil" not in clean.content
        assert again.content == first.content
        assert h.origin.count("/page") == 2


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [("/a%2Fb", "/a/b"), ("/%61", "/a"), ("/a%2fb", "/a/b"), ("/%7Euser", "/~user")],
)
async def test_raw_paths_that_decode_alike_never_share_an_entry(
    h: CacheHarness, encoded: str, decoded: str
) -> None:
    h.origin.reply(decoded, body=reflect_request)
    first = await h.client.get(encoded)
    second = await h.client.get(decoded)
    assert first.content.split(b"|")[0] != second.content.split(b"|")[0]
    assert h.origin.count(decoded) == 2


async def test_hosts_do_not_share_entries(h: CacheHarness) -> None:
    h.origin.reply("/h", body=lambda scope: dict(scope["headers"])[b"host"])
    one = await h.client.get("/h", headers={"host": "one.test"})
    two = await h.client.get("/h", headers={"host": "two.test"})
    assert (one.content, two.content) == (b"one.test", b"two.test")


async def test_query_order_is_part_of_the_key_by_default(h: CacheHarness) -> None:
    h.origin.reply("/q", body=lambda scope: scope["query_string"])
    await h.client.get("/q?a=1&b=2")
    response = await h.client.get("/q?b=2&a=1")
    assert response.content == b"b=2&a=1"


async def test_get_with_a_body_is_never_stored(h: CacheHarness) -> None:
    await h.client.request("GET", "/b", content=b"smuggled")
    await h.client.request("GET", "/b", content=b"smuggled")
    clean = await h.client.get("/b")
    assert h.origin.count("/b") == 3
    assert "fwd=uri-miss" in clean.headers["cache-status"]


async def test_request_with_cookie_bypasses_by_default(h: CacheHarness) -> None:
    await h.client.get("/c", headers={"cookie": "sid=secret"})
    clean = await h.client.get("/c")
    assert "fwd=uri-miss" in clean.headers["cache-status"]
    assert h.origin.count("/c") == 2


async def test_analytics_cookies_do_not_bypass(h: CacheHarness) -> None:
    await h.client.get("/c", headers={"cookie": "_ga=GA1.2.3; _gid=x"})
    hit = await h.client.get("/c", headers={"cookie": "_ga=GA1.9.9"})
    assert hit.headers["cache-status"].startswith("cachemw; hit")


async def test_route_can_opt_in_to_caching_requests_with_cookies(valkey: Valkey) -> None:
    settings = CacheSettings(routes={"/public/*": RouteCache(allow_cookies=True)})
    async with build_harness(valkey, settings) as h:
        await h.client.get("/public/x", headers={"cookie": "sid=1"})
        hit = await h.client.get("/public/x", headers={"cookie": "sid=2"})
        assert hit.headers["cache-status"].startswith("cachemw; hit")


async def test_request_with_authorization_bypasses_by_default(h: CacheHarness) -> None:
    h.origin.reply("/me", headers=[("cache-control", "public, max-age=60")])
    await h.client.get("/me", headers={"authorization": "Bearer alice"})
    response = await h.client.get("/me", headers={"authorization": "Bearer bob"})
    assert "detail=authorization" in response.headers["cache-status"]
    assert h.origin.count("/me") == 2


async def test_disabled_route_is_never_cached(valkey: Valkey) -> None:
    settings = CacheSettings(routes={"/admin/*": RouteCache(enabled=False)})
    async with build_harness(valkey, settings) as h:
        await h.client.get("/admin/x")
        await h.client.get("/admin/x")
        assert h.origin.count("/admin/x") == 2


async def test_websocket_and_lifespan_scopes_pass_through(h: CacheHarness) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    h.cache.app = app
    await h.cache({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    await h.cache({"type": "websocket", "path": "/ws"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan", "websocket"]


async def test_duplicate_host_cannot_poison_the_clean_host(h: CacheHarness) -> None:
    h.origin.reply(
        "/h", body=lambda scope: b"|".join(v for k, v in scope["headers"] if k == b"host")
    )
    scope_headers = [("host", ATTACKER), ("host", "shop.test")]
    attack = await h.client.get("/h", headers=httpx.Headers(scope_headers))
    clean = await h.client.get("/h")
    assert "duplicate-host" in attack.headers["cache-status"]
    assert ATTACKER.encode() not in clean.content
