"""Bounded resources: body cap with streaming tee, variants, URL length, header size."""

from __future__ import annotations

import asyncio
from typing import Any

from cachemw.cache import CacheMiddleware, CacheSettings
from cachemw.valkey import Valkey
from tests.cache.conftest import CacheHarness, build_harness
from tests.support.servers import all_keys


async def test_body_above_the_cap_streams_through_and_is_not_stored(valkey: Valkey) -> None:
    async with build_harness(valkey, CacheSettings(max_body_size=1000)) as h:
        h.origin.reply("/big", body=b"x" * 5000, chunks=5)
        first = await h.client.get("/big")
        second = await h.client.get("/big")
        assert first.content == second.content == b"x" * 5000
        assert h.origin.count("/big") == 2


async def test_declared_length_above_the_cap_is_refused_up_front(valkey: Valkey) -> None:
    async with build_harness(valkey, CacheSettings(max_body_size=1000)) as h:
        h.origin.reply("/big", body=b"x" * 5000)
        first = await h.client.get("/big")
        assert "detail=too-large" in first.headers["cache-status"]
        assert first.content == b"x" * 5000


async def test_streaming_body_below_the_cap_is_teed_into_the_store(h: CacheHarness) -> None:
    h.origin.reply("/stream", body=b"0123456789" * 40, chunks=4)
    first = await h.client.get("/stream")
    hit = await h.client.get("/stream")
    assert hit.content == first.content == b"0123456789" * 40
    assert hit.headers["content-length"] == "400"
    assert h.origin.count("/stream") == 1


async def test_client_gets_streamed_chunks_before_the_body_ends(valkey: Valkey) -> None:
    release = asyncio.Event()

    async def streaming_app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"cache-control", b"max-age=60")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await release.wait()
        await send({"type": "http.response.body", "body": b"last"})

    cache = CacheMiddleware(streaming_app, valkey=valkey)
    received: list[bytes] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            received.append(message.get("body", b""))
            release.set()  # only the first chunk's arrival lets the app finish

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/s",
        "raw_path": b"/s",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"shop.test")],
    }
    try:
        async with asyncio.timeout(5):
            await cache(scope, receive, send)
    finally:
        await cache.aclose()
    assert received == [b"first", b"last"]


async def test_variants_per_url_are_bounded(valkey: Valkey, valkey_sync: Any) -> None:
    async with build_harness(valkey, CacheSettings(max_variants=2)) as h:
        h.origin.reply("/v", headers=[("cache-control", "max-age=60"), ("vary", "x-v")])
        for i in range(6):
            await h.client.get("/v", headers={"x-v": str(i)})
        hashes = [k for k in all_keys(valkey_sync) if valkey_sync.type(k) == b"hash"]
        assert len(hashes) == 1
        entries = [f for f in valkey_sync.hkeys(hashes[0]) if f.startswith(b"e:")]
        assert len(entries) <= 3


async def test_overlong_url_bypasses_the_cache(valkey: Valkey) -> None:
    async with build_harness(valkey, CacheSettings(max_url_length=100)) as h:
        response = await h.client.get("/" + "a" * 200)
        assert "detail=url-too-long" in response.headers["cache-status"]


async def test_response_with_too_many_headers_is_not_stored(valkey: Valkey) -> None:
    async with build_harness(valkey, CacheSettings(max_header_count=5)) as h:
        headers = [("cache-control", "max-age=60")] + [(f"x-{i}", "1") for i in range(10)]
        h.origin.reply("/many", headers=headers)
        first = await h.client.get("/many")
        await h.client.get("/many")
        assert "detail=headers-too-large" in first.headers["cache-status"]
        assert h.origin.count("/many") == 2


async def test_entries_expire_in_valkey(h: CacheHarness, valkey_sync: Any) -> None:
    h.origin.reply("/ttl", headers=[("cache-control", "max-age=30")])
    await h.client.get("/ttl")
    hashes = [k for k in all_keys(valkey_sync) if valkey_sync.type(k) == b"hash"]
    assert hashes
    # The retention is rounded up to the next millisecond: 30.001 s read within 1 ms.
    assert all(0 < valkey_sync.pttl(k) <= 30_001 for k in hashes)
