"""The opt-in near cache: in-process hits that stay coherent through Valkey key tracking."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from cachemw.cache import CacheMiddleware, CacheSettings
from cachemw.cache.near import ENTRY_OVERHEAD, NearCache
from cachemw.valkey import BreakerState, Valkey
from tests.cache.conftest import CacheHarness, Clock, Origin, build_harness, make_client
from tests.conftest import make_settings

NEAR = CacheSettings(near_cache_entries=100, near_cache_ttl=30.0)
PATHS = [f"/item/{i}" for i in range(8)]  # spread over every primary of the cluster
# The tracking machinery's own health checks are not request traffic.
_BACKGROUND_COMMANDS = ("cmdstat_info", "cmdstat_cluster", "cmdstat_role", "cmdstat_hello")


async def eventually(predicate: Callable[[], bool], *, within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)


def request_commands(client: Any) -> int:
    stats = client.info("commandstats")
    nodes = [stats] if any(k.startswith("cmdstat_") for k in stats) else list(stats.values())
    return sum(
        int(value["calls"])
        for node in nodes
        for name, value in node.items()
        if name.startswith("cmdstat_") and name not in _BACKGROUND_COMMANDS
    )


def kill_tracking_connections(client: redis.Redis | RedisCluster) -> int:
    nodes: list[Any] = (
        [client.get_redis_connection(n) for n in client.get_primaries()]  # type: ignore[no-untyped-call]
        if isinstance(client, RedisCluster)
        else [client]
    )
    killed = 0
    for node in nodes:
        for info in node.client_list():
            if info.get("name", "").endswith("-tracking"):
                killed += int(node.execute_command("CLIENT", "KILL", "ID", info["id"]))
    return killed


@asynccontextmanager
async def near_harness(
    valkey_url: str, settings: CacheSettings = NEAR, *, body: bytes = b"v1"
) -> AsyncIterator[CacheHarness]:
    valkey = Valkey(make_settings(valkey_url))
    try:
        async with build_harness(valkey, settings, Clock(time.time())) as h:
            h.origin.reply("/", body=body)
            for path in PATHS:
                h.origin.reply(path, body=body)
            await h.client.get("/")  # starts key tracking lazily
            tracking = h.cache.key_tracking
            assert tracking is not None
            await eventually(lambda: tracking.is_live)
            yield h
    finally:
        await valkey.aclose()


def near_of(h: CacheHarness) -> NearCache[Any]:
    near = h.cache.store.near
    assert near is not None
    return near


async def warm(h: CacheHarness, paths: list[str]) -> None:
    """Fill in Valkey, then read once more so the near cache holds each path."""
    for path in paths:
        await h.client.get(path)
        await h.client.get(path)
    assert len(near_of(h)) == len(paths)


async def test_near_cache_is_off_by_default(valkey: Valkey) -> None:
    cache = CacheMiddleware(Origin(), valkey=valkey)  # type: ignore[arg-type]
    assert cache.store.near is None
    assert cache.key_tracking is None


async def test_near_hit_issues_no_valkey_commands(
    valkey_url: str, valkey_sync: redis.Redis | RedisCluster
) -> None:
    async with near_harness(valkey_url) as h:
        await warm(h, PATHS)
        before = request_commands(valkey_sync)
        for path in PATHS:
            response = await h.client.get(path)
            assert response.content == b"v1"
            assert "hit" in response.headers["cache-status"]
        assert request_commands(valkey_sync) - before == 0
        assert sum(h.origin.calls.get(p, 0) for p in PATHS) == len(PATHS)


async def test_update_through_another_client_is_seen_by_the_next_request(
    valkey_url: str,
) -> None:
    async with near_harness(valkey_url) as a, near_harness(valkey_url, body=b"v2") as b:
        await warm(a, PATHS)
        for path in PATHS:
            # Another process: its POST invalidates, its GET stores the new version.
            assert (await b.client.post(path)).status_code == 200
            assert (await b.client.get(path)).content == b"v2"
        # Within one invalidation delivery (the entry cap here is 30 s, so not the cap).
        await eventually(lambda: len(near_of(a)) == 0, within=0.5)
        for path in PATHS:
            assert (await a.client.get(path)).content == b"v2"


async def test_own_invalidation_is_seen_at_once(valkey_url: str) -> None:
    async with near_harness(valkey_url) as h:
        await warm(h, PATHS[:1])
        h.origin.reply(PATHS[0], body=b"v2")
        await h.client.post(PATHS[0])
        assert (await h.client.get(PATHS[0])).content == b"v2"


async def test_flushall_flushes_the_near_cache(
    valkey_url: str, valkey_sync: redis.Redis | RedisCluster
) -> None:
    async with near_harness(valkey_url) as h:
        await warm(h, PATHS)
        if isinstance(valkey_sync, RedisCluster):
            valkey_sync.flushall(target_nodes=RedisCluster.PRIMARIES)
        else:
            valkey_sync.flushall()
        await eventually(lambda: len(near_of(h)) == 0, within=0.5)
        await h.client.get(PATHS[0])
        assert h.origin.count(PATHS[0]) == 2


async def test_tracking_connection_loss_flushes_until_tracking_is_back(
    valkey_url: str, valkey_sync: redis.Redis | RedisCluster
) -> None:
    async with near_harness(valkey_url) as h:
        tracking = h.cache.key_tracking
        assert tracking is not None
        await warm(h, PATHS)
        generation = near_of(h).generation
        assert kill_tracking_connections(valkey_sync) >= 1
        await eventually(lambda: not tracking.is_live, within=0.5)
        assert len(near_of(h)) == 0
        assert near_of(h).generation > generation
        await h.client.get(PATHS[0])
        assert len(near_of(h)) == 0  # nothing kept while messages may be missed
        await eventually(lambda: tracking.is_live, within=3.0)
        await h.client.get(PATHS[0])
        assert len(near_of(h)) == 1


async def test_breaker_leaving_closed_flushes_the_near_cache(valkey_url: str) -> None:
    async with near_harness(valkey_url) as h:
        await warm(h, PATHS)
        breaker = h.cache.store.valkey.breaker
        for _ in range(breaker.failure_threshold):
            breaker.record_failure()
        assert breaker.state is BreakerState.OPEN
        assert len(near_of(h)) == 0


async def test_near_cache_is_never_filled_before_tracking_is_live(valkey_url: str) -> None:
    valkey = Valkey(make_settings(valkey_url))
    try:
        async with build_harness(valkey, NEAR, Clock(time.time())) as h:
            for _ in range(3):
                await h.client.get("/")
            tracking = h.cache.key_tracking
            assert tracking is not None
            if not tracking.is_live:
                assert len(near_of(h)) == 0
    finally:
        await valkey.aclose()


async def test_aclose_stops_tracking(valkey_url: str) -> None:
    valkey = Valkey(make_settings(valkey_url))
    cache = CacheMiddleware(Origin(), valkey=valkey, settings=NEAR)  # type: ignore[arg-type]
    try:
        async with make_client(cache) as client:
            await client.get("/")
            tracking = cache.key_tracking
            assert tracking is not None
            await eventually(lambda: tracking.is_live)
        await cache.aclose()
        assert not tracking.is_live
        assert cache.store.near is not None
        assert len(cache.store.near) == 0
    finally:
        await valkey.aclose()


# -- the LRU and its coherence rules, without Valkey ------------------------------------------


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def live_near(**overrides: Any) -> tuple[NearCache[bytes], Ticks]:
    ticks = Ticks()
    options: dict[str, Any] = {"max_entries": 3, "max_bytes": 10_000, "ttl": 1.0}
    options.update(overrides)
    near: NearCache[bytes] = NearCache(clock=ticks, **options)
    near.tracking_confirmed()
    return near, ticks


def fill(near: NearCache[bytes], key: str, value: bytes = b"x", variant: str = "v") -> None:
    ticket = near.begin(key)
    assert ticket is not None
    near.finish(ticket, variant, value, len(value))


def test_entry_count_bound_evicts_least_recently_used() -> None:
    near, _ = live_near(max_entries=3)
    for key in "abc":
        fill(near, key)
    assert near.get("a", "v") == b"x"  # a is now the most recently used
    fill(near, "d")
    assert len(near) == 3
    assert near.get("b", "v") is None
    assert near.get("a", "v") == b"x"


def test_byte_bound_holds() -> None:
    near, _ = live_near(max_entries=100, max_bytes=3 * (ENTRY_OVERHEAD + 100))
    for key in "abcdef":
        fill(near, key, b"y" * 100)
        assert near.size_bytes <= near.max_bytes
    assert len(near) == 3


def test_entry_larger_than_the_byte_bound_is_not_kept() -> None:
    near, _ = live_near(max_bytes=1000)
    fill(near, "a", b"z" * 1000)
    assert len(near) == 0
    assert near.size_bytes == 0


def test_entry_is_not_served_past_its_ttl() -> None:
    near, ticks = live_near(ttl=1.0)
    fill(near, "a")
    ticks.now += 0.999
    assert near.get("a", "v") == b"x"
    ticks.now += 0.001
    assert near.get("a", "v") is None


def test_invalidation_during_lookup_spoils_its_reply() -> None:
    near, _ = live_near()
    ticket = near.begin("a")
    assert ticket is not None
    near.invalidated([b"a"])  # the write happened after the read may have run
    near.finish(ticket, "v", b"old", 3)
    assert near.get("a", "v") is None
    fill(near, "a")  # a later lookup is kept again
    assert near.get("a", "v") == b"x"


def test_invalidation_removes_every_variant_of_a_key() -> None:
    near, _ = live_near()
    fill(near, "a", variant="v1")
    fill(near, "a", variant="v2")
    fill(near, "b")
    near.invalidated([b"a"])
    assert len(near) == 1
    assert near.get("b", "v") == b"x"


def test_null_invalidation_flushes_everything() -> None:
    near, _ = live_near()
    fill(near, "a")
    near.invalidated(None)
    assert len(near) == 0


def test_lookup_started_before_tracking_is_live_is_not_kept() -> None:
    near: NearCache[bytes] = NearCache(max_entries=3, max_bytes=10_000, ttl=1.0)
    assert near.begin("a") is None
    near.tracking_confirmed()
    ticket = near.begin("a")
    assert ticket is not None
    near.tracking_lost()
    near.tracking_confirmed()  # live again, but messages between may be lost
    near.finish(ticket, "v", b"x", 1)
    assert len(near) == 0


def test_nothing_is_served_while_tracking_is_lost() -> None:
    near, _ = live_near()
    fill(near, "a")
    near.tracking_lost()
    assert near.get("a", "v") is None
    assert near.begin("a") is None


@pytest.mark.parametrize(
    ("setting", "value"),
    [("near_cache_entries", -1), ("near_cache_max_bytes", 0), ("near_cache_ttl", 0)],
)
def test_invalid_near_cache_setting_names_itself(setting: str, value: float) -> None:
    with pytest.raises(ValueError, match=setting):
        CacheSettings(**{setting: value})  # type: ignore[arg-type]
