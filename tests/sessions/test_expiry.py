"""Idle and absolute timeouts, enforced by Valkey; throttled sliding refresh."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
from redis.cluster import RedisCluster

from cachemw.sessions import SessionConfig, SessionStore
from cachemw.valkey import Valkey
from tests.sessions.apps import fastapi_app
from tests.sessions.conftest import Browser
from tests.support.servers import all_keys


def _per_node_info(client: redis.Redis | RedisCluster) -> list[dict[str, Any]]:
    if isinstance(client, RedisCluster):
        replies = client.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        return list(replies.values()) if isinstance(replies, dict) and replies else []
    return [client.info("commandstats")]


def command_calls(client: redis.Redis | RedisCluster, command: str) -> int:
    total = 0
    for info in _per_node_info(client):
        stats = info.get(f"cmdstat_{command}")
        if isinstance(stats, dict):
            total += int(stats["calls"])
    return total


def reset_stats(client: redis.Redis | RedisCluster) -> None:
    if isinstance(client, RedisCluster):
        client.config_resetstat(target_nodes=RedisCluster.PRIMARIES)
    else:
        client.config_resetstat()


async def _browser(valkey: Valkey, **config: Any) -> Browser:
    return Browser(fastapi_app(SessionStore(valkey, SessionConfig(**config))))


async def test_idle_session_expires_after_idle_timeout(valkey: Valkey) -> None:
    browser = await _browser(valkey, idle_timeout=1.0, absolute_lifetime=10)
    try:
        await browser.post("/cart/apple")
        await asyncio.sleep(0.3)
        assert (await browser.get("/read")).json()["new"] is False
        await asyncio.sleep(1.1)
        assert (await browser.get("/read")).json()["new"] is True
    finally:
        await browser.aclose()


async def test_activity_slides_idle_expiry(valkey: Valkey) -> None:
    browser = await _browser(valkey, idle_timeout=1.0, absolute_lifetime=10, refresh_throttle=0)
    try:
        await browser.post("/cart/apple")
        deadline = time.monotonic() + 2.2  # more than two idle timeouts
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            assert (await browser.get("/read")).json()["new"] is False
    finally:
        await browser.aclose()


async def test_absolute_lifetime_ends_an_active_session(valkey: Valkey) -> None:
    browser = await _browser(valkey, idle_timeout=0.8, absolute_lifetime=1.2, refresh_throttle=0)
    try:
        started = time.monotonic()
        await browser.post("/cart/apple")
        ended_after = None
        while time.monotonic() - started < 2.0:
            await asyncio.sleep(0.1)
            if (await browser.get("/read")).json()["new"]:
                ended_after = time.monotonic() - started
                break
        assert ended_after is not None
        assert 1.1 <= ended_after <= 2.0
    finally:
        await browser.aclose()


async def test_ttl_refresh_writes_at_most_once_per_throttle_period(
    valkey: Valkey, valkey_sync: redis.Redis
) -> None:
    throttle = 0.5
    browser = await _browser(
        valkey, idle_timeout=60, absolute_lifetime=600, refresh_throttle=throttle
    )
    try:
        created = time.monotonic()  # before the expiry is first set: a safe upper bound
        await browser.post("/cart/apple")
        reset_stats(valkey_sync)
        for _ in range(3):
            for _ in range(15):
                await browser.get("/read")
            await asyncio.sleep(throttle * 0.6)
        elapsed = time.monotonic() - created
        refreshes = command_calls(valkey_sync, "pexpireat")
        # Each refresh moves the expiry by >= the throttle, so over `elapsed` seconds there
        # are at most elapsed/throttle of them; sleeping past the throttle makes one due.
        assert 1 <= refreshes <= int(elapsed / throttle)
        assert command_calls(valkey_sync, "hset") == 0  # a refresh never rewrites data
    finally:
        await browser.aclose()


async def test_no_refresh_within_the_first_throttle_period(
    valkey: Valkey, valkey_sync: redis.Redis
) -> None:
    browser = await _browser(valkey, idle_timeout=600, absolute_lifetime=6000)  # throttle 60 s
    try:
        await browser.post("/cart/apple")
        reset_stats(valkey_sync)
        for _ in range(25):
            await browser.get("/read")
        assert command_calls(valkey_sync, "pexpireat") == 0
    finally:
        await browser.aclose()


async def test_default_refresh_throttle_is_a_tenth_of_idle_timeout() -> None:
    assert SessionConfig(idle_timeout=600).refresh_throttle_ms == 60_000


async def test_expiry_set_on_create_is_capped_by_absolute_lifetime(
    valkey: Valkey, valkey_sync: redis.Redis
) -> None:
    browser = await _browser(valkey, idle_timeout=100, absolute_lifetime=100)
    try:
        await browser.post("/cart/apple")
        (key,) = all_keys(valkey_sync)
        ttl = valkey_sync.pttl(key)
        assert 95_000 < ttl <= 100_000
    finally:
        await browser.aclose()
