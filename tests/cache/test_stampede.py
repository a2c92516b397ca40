"""Stampede control: one origin call per variant across app instances sharing Valkey."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from cachemw.cache import CacheMiddleware, CacheSettings
from cachemw.metrics import Metrics
from cachemw.valkey import Valkey
from tests.cache.conftest import Clock, Origin, make_client
from tests.conftest import make_settings

BURST = 200


@asynccontextmanager
async def two_instances(
    valkey_url: str, origin: Origin, clock: Clock, settings: CacheSettings | None = None
) -> AsyncIterator[tuple[list[CacheMiddleware], list[httpx.AsyncClient]]]:
    """Two app instances: each its own Valkey client, middleware and HTTP client."""
    async with AsyncExitStack() as stack:
        caches: list[CacheMiddleware] = []
        clients: list[httpx.AsyncClient] = []
        for _ in range(2):
            valkey = Valkey(make_settings(valkey_url))
            stack.push_async_callback(valkey.aclose)
            cache = CacheMiddleware(
                origin, valkey=valkey, settings=settings, metrics=Metrics(), clock=clock
            )
            stack.push_async_callback(cache.aclose)
            caches.append(cache)
            clients.append(await stack.enter_async_context(make_client(cache)))
        yield caches, clients


async def burst(clients: list[httpx.AsyncClient], path: str) -> list[httpx.Response]:
    return await asyncio.gather(*(clients[i % 2].get(path) for i in range(BURST)))


async def drain_background(caches: list[CacheMiddleware]) -> None:
    for _ in range(100):
        tasks = [t for cache in caches for t in cache._background]
        if not tasks:
            return
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_cold_key_burst_across_two_instances_calls_origin_once(valkey_url: str) -> None:
    origin = Origin()
    origin.reply("/cold", delay=0.2, body=b"expensive")
    async with two_instances(valkey_url, origin, Clock()) as (_, clients):
        responses = await burst(clients, "/cold")
    assert origin.count("/cold") == 1
    assert all(r.status_code == 200 and r.content == b"expensive" for r in responses)


async def test_expired_key_with_swr_serves_everyone_stale_and_refreshes_once(
    valkey_url: str,
) -> None:
    origin = Origin()
    origin.reply(
        "/swr", delay=0.2, headers=[("cache-control", "max-age=10, stale-while-revalidate=600")]
    )
    clock = Clock()
    async with two_instances(valkey_url, origin, clock) as (caches, clients):
        await clients[0].get("/swr")
        clock.advance(20)
        responses = await burst(clients, "/swr")
        await drain_background(caches)
    assert origin.count("/swr") == 2  # the fill, then exactly one background refresh
    # Every response came from the cache: stale, or fresh once the refresh had landed.
    assert all(r.headers["cache-status"].startswith("cachemw; hit") for r in responses)
    assert any("stale-while-revalidate" in r.headers["cache-status"] for r in responses)
    for cache in caches:
        assert cache.metrics is not None
        # Nobody waited: no request joined a fill or went to the origin itself.
        assert cache.metrics.total("cachemw_cache_coalesced_total") == 0
        assert cache.metrics.total("cachemw_cache_miss_total") <= (1 if cache is caches[0] else 0)


async def test_expired_key_without_swr_calls_origin_once(valkey_url: str) -> None:
    origin = Origin()
    origin.reply("/exp", delay=0.2, headers=[("cache-control", "max-age=10")])
    clock = Clock()
    async with two_instances(valkey_url, origin, clock) as (_, clients):
        await clients[0].get("/exp")
        clock.advance(20)
        responses = await burst(clients, "/exp")
    assert origin.count("/exp") == 2
    assert all(r.status_code == 200 for r in responses)


async def test_unshareable_leader_response_is_not_handed_to_waiters(valkey_url: str) -> None:
    origin = Origin()
    origin.reply(
        "/private",
        delay=0.1,
        headers=[("cache-control", "private, max-age=60")],
        body=lambda scope: b"for one user",
    )
    async with two_instances(valkey_url, origin, Clock()) as (caches, clients):
        responses = await asyncio.gather(*(clients[i % 2].get("/private") for i in range(10)))
        assert all(r.status_code == 200 for r in responses)
        # Every request got its own origin response; none received the leader's.
        assert origin.count("/private") == 10
        # Hit-for-pass: the next burst does not queue behind a leader at all.
        again = await clients[1].get("/private")
        assert "hit-for-pass" in again.headers["cache-status"]
        assert caches[1].metrics is not None


async def test_waiter_gives_up_after_bounded_wait_and_calls_the_app(valkey_url: str) -> None:
    origin = Origin()
    origin.reply("/slow", delay=0.5)
    settings = CacheSettings(coalesce_wait=0.05)
    async with two_instances(valkey_url, origin, Clock(), settings) as (_, clients):
        responses = await asyncio.gather(clients[0].get("/slow"), clients[1].get("/slow"))
    assert all(r.status_code == 200 for r in responses)
    assert origin.count("/slow") == 2


def test_cold_key_burst_across_two_event_loops_calls_origin_once(valkey_url: str) -> None:
    """Two app instances on two threads, each with its own event loop (as two processes)."""
    origin = Origin()
    origin.reply("/loops", delay=0.2, body=b"expensive")
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    async def instance() -> None:
        valkey = Valkey(make_settings(valkey_url))
        cache = CacheMiddleware(origin, valkey=valkey, clock=Clock())
        try:
            async with make_client(cache) as client:
                await asyncio.to_thread(barrier.wait)
                responses = await asyncio.gather(*(client.get("/loops") for _ in range(BURST // 2)))
                statuses.extend(r.status_code for r in responses)
        finally:
            await cache.aclose()
            await valkey.aclose()

    threads = [threading.Thread(target=asyncio.run, args=(instance(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [200] * BURST
    assert origin.count("/loops") == 1
