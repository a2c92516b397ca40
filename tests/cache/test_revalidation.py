"""Stale entries: validation (RFC 9111 §4.3), stale-while-revalidate and stale-if-error
(RFC 5861), XFetch early refresh."""

from __future__ import annotations

import asyncio

from cachemw.cache import CacheMiddleware, CacheSettings
from cachemw.valkey import Valkey
from tests.cache.conftest import CacheHarness, build_harness

ETAG = '"v1"'


async def drain(cache: CacheMiddleware) -> None:
    while cache._background:
        await asyncio.gather(*list(cache._background), return_exceptions=True)


async def test_stale_entry_is_revalidated_with_its_validators(h: CacheHarness) -> None:
    h.origin.reply(
        "/v",
        headers=[("cache-control", "max-age=10"), ("etag", ETAG)],
        body=b"original",
        conditional=True,
    )
    await h.client.get("/v")
    h.clock.advance(11)
    response = await h.client.get("/v")
    sent = dict(h.origin.requests[-1]["headers"])
    assert sent[b"if-none-match"] == ETAG.encode()
    assert response.status_code == 200
    assert response.content == b"original"
    assert response.headers["cache-status"].startswith("cachemw; fwd=stale; fwd-status=304")


async def test_not_modified_from_origin_freshens_the_entry(h: CacheHarness) -> None:
    h.origin.reply(
        "/v", headers=[("cache-control", "max-age=10"), ("etag", ETAG)], conditional=True
    )
    await h.client.get("/v")
    h.clock.advance(11)
    await h.client.get("/v")
    h.clock.advance(5)
    hit = await h.client.get("/v")
    assert h.origin.count("/v") == 2
    assert hit.headers["cache-status"].startswith("cachemw; hit")
    assert hit.headers["age"] == "5"


async def test_not_modified_updates_stored_header_fields(h: CacheHarness) -> None:
    reply = h.origin.reply(
        "/v",
        headers=[("cache-control", "max-age=10"), ("etag", ETAG), ("x-version", "1")],
        conditional=True,
    )
    await h.client.get("/v")
    reply.headers = [("cache-control", "max-age=100"), ("etag", ETAG)]
    h.clock.advance(11)
    await h.client.get("/v")
    h.clock.advance(50)
    hit = await h.client.get("/v")
    assert hit.headers["cache-control"] == "max-age=100"
    assert hit.headers["x-version"] == "1"
    assert h.origin.count("/v") == 2


async def test_stale_entry_without_validator_is_refetched(h: CacheHarness) -> None:
    reply = h.origin.reply("/v", headers=[("cache-control", "max-age=10")], body=b"one")
    await h.client.get("/v")
    reply.body = b"two"
    h.clock.advance(11)
    response = await h.client.get("/v")
    assert response.content == b"two"
    assert not any(n.startswith(b"if-") for n, _ in h.origin.requests[-1]["headers"])


async def test_stale_if_error_serves_stale_on_origin_5xx(h: CacheHarness) -> None:
    reply = h.origin.reply(
        "/e", headers=[("cache-control", "max-age=10, stale-if-error=60")], body=b"good"
    )
    await h.client.get("/e")
    reply.status, reply.body = 500, b"broken"
    h.clock.advance(30)
    response = await h.client.get("/e")
    assert response.status_code == 200
    assert response.content == b"good"
    assert "stale-if-error" in response.headers["cache-status"]


async def test_stale_if_error_serves_stale_when_the_app_raises(h: CacheHarness) -> None:
    reply = h.origin.reply("/e", headers=[("cache-control", "max-age=10, stale-if-error=60")])
    await h.client.get("/e")
    reply.raises = True
    h.clock.advance(30)
    response = await h.client.get("/e")
    assert response.status_code == 200


async def test_stale_if_error_window_is_bounded(h: CacheHarness) -> None:
    reply = h.origin.reply("/e", headers=[("cache-control", "max-age=10, stale-if-error=60")])
    await h.client.get("/e")
    reply.status = 500
    h.clock.advance(100)
    response = await h.client.get("/e")
    assert response.status_code == 500


async def test_must_revalidate_forbids_stale_if_error(h: CacheHarness) -> None:
    reply = h.origin.reply(
        "/e", headers=[("cache-control", "max-age=10, must-revalidate, stale-if-error=60")]
    )
    await h.client.get("/e")
    reply.status = 500
    h.clock.advance(30)
    assert (await h.client.get("/e")).status_code == 500


async def test_stale_while_revalidate_serves_stale_and_refreshes_in_background(
    h: CacheHarness,
) -> None:
    reply = h.origin.reply(
        "/s", headers=[("cache-control", "max-age=10, stale-while-revalidate=60")], body=b"old"
    )
    await h.client.get("/s")
    reply.body = b"new"
    h.clock.advance(20)
    stale = await h.client.get("/s")
    assert stale.content == b"old"
    assert "stale-while-revalidate" in stale.headers["cache-status"]
    await drain(h.cache)
    fresh = await h.client.get("/s")
    assert fresh.content == b"new"
    assert fresh.headers["cache-status"].startswith("cachemw; hit")
    assert h.origin.count("/s") == 2


async def test_background_refreshes_are_bounded(valkey: Valkey) -> None:
    settings = CacheSettings(max_background_refreshes=2)
    async with build_harness(valkey, settings) as h:
        for i in range(5):
            h.origin.reply(
                f"/s{i}",
                delay=0.2,
                headers=[("cache-control", "max-age=10, stale-while-revalidate=60")],
            )
            await h.client.get(f"/s{i}")
        h.clock.advance(20)
        await asyncio.gather(*(h.client.get(f"/s{i}") for i in range(5)))
        assert len(h.cache._background) <= 2
        await drain(h.cache)
        assert sum(h.origin.count(f"/s{i}") for i in range(5)) == 5 + 2


async def test_xfetch_refreshes_a_slow_entry_early(valkey: Valkey) -> None:
    settings = CacheSettings(xfetch_beta=100.0)
    async with build_harness(valkey, settings) as h:

        def slow_origin(scope: object) -> list[tuple[str, str]]:
            h.clock.advance(5)  # the origin takes 5 s of the cache's clock: delta
            return [("cache-control", "max-age=60")]

        h.origin.reply("/x", headers=slow_origin)
        await h.client.get("/x")
        h.clock.advance(54)  # <= 1 s left: 500 * -ln(rand) >= 1 fails with p < 0.002
        hit = await h.client.get("/x")
        assert hit.headers["cache-status"].startswith("cachemw; hit")
        await drain(h.cache)
        assert h.origin.count("/x") == 2


async def test_xfetch_disabled_never_refreshes_early(valkey: Valkey) -> None:
    async with build_harness(valkey, CacheSettings(xfetch_beta=0)) as h:
        h.origin.reply("/x", delay=0.05, headers=[("cache-control", "max-age=60")])
        await h.client.get("/x")
        h.clock.advance(59)
        await h.client.get("/x")
        await drain(h.cache)
        assert h.origin.count("/x") == 1


async def test_not_modified_never_replaces_stored_content_metadata(h: CacheHarness) -> None:
    reply = h.origin.reply(
        "/v",
        headers=[("cache-control", "max-age=10"), ("etag", ETAG), ("content-md5", "abc")],
    )
    await h.client.get("/v")
    h.origin.reply(
        "/v",
        status=304,
        headers=[("cache-control", "max-age=10"), ("etag", '"other"'), ("content-md5", "xyz")],
    )
    h.clock.advance(11)
    served = await h.client.get("/v")
    assert served.headers["etag"] == ETAG
    assert served.headers["content-md5"] == "abc"
    assert served.content == reply.body


async def test_not_modified_never_stores_fields_its_connection_field_lists(
    h: CacheHarness,
) -> None:
    # RFC 9111 §3.2 excepts the fields of §3.1 from updating, and §3.1 includes every field
    # the Connection field names: they concern one hop, not the stored response.
    h.origin.reply("/v", headers=[("cache-control", "max-age=10"), ("etag", ETAG)])
    await h.client.get("/v")
    h.origin.reply(
        "/v",
        status=304,
        headers=[
            ("cache-control", "max-age=100"),
            ("etag", ETAG),
            ("connection", "x-hop"),
            ("x-hop", "secret"),
        ],
    )
    h.clock.advance(11)
    await h.client.get("/v")
    h.clock.advance(50)
    hit = await h.client.get("/v")
    assert "hit" in hit.headers["cache-status"]
    assert hit.headers["cache-control"] == "max-age=100"
    assert "x-hop" not in hit.headers


async def test_stored_cdn_cache_control_stays_in_force_after_a_304_without_it(
    h: CacheHarness,
) -> None:
    # RFC 9111 §4.3.4: a 304 updates only the fields it carries. The stored
    # CDN-Cache-Control (10 s for this cache) still replaces the 304's Cache-Control.
    h.origin.reply(
        "/v",
        headers=[
            ("cache-control", "max-age=1000"),
            ("cdn-cache-control", "max-age=10"),
            ("etag", ETAG),
        ],
    )
    await h.client.get("/v")
    h.origin.reply("/v", status=304, headers=[("cache-control", "max-age=1000"), ("etag", ETAG)])
    h.clock.advance(11)
    await h.client.get("/v")  # stale: revalidated, 304
    h.clock.advance(11)
    await h.client.get("/v")  # stale again after the CDN-Cache-Control's 10 s
    assert h.origin.count("/v") == 3
