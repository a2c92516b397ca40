"""Fill locks, fencing tokens, wake-ups and in-process collapsing."""

from __future__ import annotations

import asyncio

from cachemw.cache import CacheMiddleware
from cachemw.cache.coalescing import FillCoordinator
from cachemw.cache.store import CacheStore
from cachemw.metrics import Metrics
from cachemw.valkey import Valkey, ValkeySettings
from cachemw.valkey.embedded import EmbeddedValkey
from tests.cache.conftest import CacheHarness, Origin, commands_processed, make_client

PK = "0" * 32
VARIANT = "1" * 32


async def store_entry(store: CacheStore, token: bytes, body: bytes) -> bool:
    return await store.store(
        primary_key=PK,
        lock_key=store.lock_key(PK, VARIANT),
        variant=VARIANT,
        vary_spec=b"",
        entry=body,
        retention_ms=60_000,
        url=b"http://t/",
        token=token,
    )


async def test_fill_lock_admits_one_leader(valkey: Valkey) -> None:
    store = CacheStore(valkey)
    first = await store.acquire_lock(PK, VARIANT, 5_000, seen_fence=None)
    second = await store.acquire_lock(PK, VARIANT, 5_000, seen_fence=None)
    assert first.token is not None
    assert second.token is None
    assert 0 < second.holder_ttl_ms <= 5_000


async def test_slow_leader_whose_lock_expired_cannot_overwrite_a_newer_entry(
    valkey: Valkey,
) -> None:
    store = CacheStore(valkey)
    slow = await store.acquire_lock(PK, VARIANT, 20, seen_fence=None)
    await asyncio.sleep(0.05)  # the slow leader's lock expires
    fast = await store.acquire_lock(PK, VARIANT, 5_000, seen_fence=None)
    assert slow.token is not None
    assert fast.token is not None
    assert await store_entry(store, fast.token, b"newer")
    assert not await store_entry(store, slow.token, b"older")
    lookup = await store.lookup(PK, VARIANT)
    assert lookup.entry == b"newer"


async def test_write_is_refused_while_another_leader_holds_the_lock(valkey: Valkey) -> None:
    store = CacheStore(valkey)
    slow = await store.acquire_lock(PK, VARIANT, 20, seen_fence=None)
    await asyncio.sleep(0.05)
    current = await store.acquire_lock(PK, VARIANT, 5_000, seen_fence=None)
    assert slow.token is not None
    assert current.token is not None
    assert not await store_entry(store, slow.token, b"older")
    assert (await store.lookup(PK, VARIANT)).entry is None


async def test_lock_is_not_taken_when_the_variant_changed_since_it_was_read(
    valkey: Valkey,
) -> None:
    store = CacheStore(valkey)
    leader = await store.acquire_lock(PK, VARIANT, 5_000, seen_fence=None)
    assert leader.token is not None
    await store_entry(store, leader.token, b"fresh")
    late = await store.acquire_lock(PK, VARIANT, 5_000, seen_fence=None)
    assert late.changed


async def test_release_wakes_a_waiter_without_polling(valkey: Valkey) -> None:
    store = CacheStore(valkey)
    coordinator = FillCoordinator(store, coalesce_wait=5.0)
    leader = await store.acquire_lock(PK, VARIANT, 5_000, seen_fence=None)
    assert leader.token is not None
    rechecks = 0

    async def recheck() -> None:
        nonlocal rechecks
        rechecks += 1

    async def release_soon() -> None:
        await asyncio.sleep(0.2)
        assert leader.token is not None
        await store.release(primary_key=PK, variant=VARIANT, token=leader.token)

    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.gather(
            coordinator.await_remote(
                lock_key=store.lock_key(PK, VARIANT), holder_ttl_ms=5_000, recheck=recheck
            ),
            release_soon(),
        )
    finally:
        await coordinator.aclose()
    elapsed = loop.time() - started
    assert 0.2 <= elapsed < 1.0  # woken by the release, long before the 5 s bound
    assert rechecks == 2  # once after subscribing, once after the wake-up


async def test_valkey_down_burst_still_calls_the_app_once_per_process(
    private_server: EmbeddedValkey,
) -> None:
    origin = Origin()
    origin.reply("/hot", delay=0.1)
    valkey = Valkey(ValkeySettings(url=private_server.url, command_timeout=0.05))
    cache = CacheMiddleware(origin, valkey=valkey)
    private_server.stop()
    try:
        async with make_client(cache) as client:
            responses = await asyncio.gather(*(client.get("/hot") for _ in range(50)))
    finally:
        await cache.aclose()
        await valkey.aclose()
    assert all(r.status_code == 200 for r in responses)
    assert origin.count("/hot") == 1


async def test_metrics_count_hits_misses_bypasses_and_refusals(valkey: Valkey) -> None:
    metrics = Metrics()
    origin = Origin()
    origin.reply("/private", headers=[("cache-control", "private")])
    cache = CacheMiddleware(origin, valkey=valkey, metrics=metrics)
    try:
        async with make_client(cache) as client:
            await client.get("/a")
            await client.get("/a")
            await client.get("/a", headers={"cookie": "sid=1"})
            await client.get("/private")
    finally:
        await cache.aclose()
    assert metrics.value("cachemw_cache_hit_total") == 1
    assert metrics.value("cachemw_cache_miss_total") == 2
    assert metrics.value("cachemw_cache_bypass_total", reason="cookie") == 1
    assert metrics.value("cachemw_cache_store_refused_total", reason="private") == 1


async def test_in_process_burst_shares_one_lookup(h: CacheHarness, valkey_sync: object) -> None:
    await h.client.get("/shared")
    before = commands_processed(valkey_sync)
    responses = await asyncio.gather(*(h.client.get("/shared") for _ in range(20)))
    assert all(r.headers["cache-status"].startswith("cachemw; hit") for r in responses)
    assert commands_processed(valkey_sync) - before < 20
