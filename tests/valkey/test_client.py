"""cachemw's Valkey client against real servers, standalone and cluster."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis
from redis.cluster import RedisCluster

from cachemw.valkey import (
    BreakerOpen,
    BreakerState,
    Script,
    Valkey,
    ValkeyCommandError,
    ValkeyUnavailable,
)
from cachemw.valkey.embedded import EmbeddedValkey
from tests.conftest import make_settings
from tests.support import servers

ECHO_KEYS = Script(
    "test_echo_keys",
    source="redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); "
    "return redis.call('GET', KEYS[2])",
)


async def test_command_round_trip(valkey: Valkey) -> None:
    key = valkey.keyspace.key_for("test", b"k")
    assert await valkey.execute("SET", key, b"v") is True
    assert await valkey.execute("GET", key) == b"v"


async def test_multi_key_script_on_one_tag_never_crossslots(valkey: Valkey) -> None:
    tag_keys = [valkey.keyspace.key_for("test", b"{client}\n", part) for part in ("a", "b")]
    assert await valkey.run_script(ECHO_KEYS, tag_keys, [b"1"], idempotent=True) == b"1"


async def test_lua_script_survives_script_flush(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster
) -> None:
    keys = [valkey.keyspace.key_for("test", b"s", part) for part in ("a", "b")]
    await valkey.run_script(ECHO_KEYS, keys, [b"1"], idempotent=True)
    if isinstance(valkey_sync, RedisCluster):
        valkey_sync.execute_command("SCRIPT", "FLUSH", target_nodes=RedisCluster.PRIMARIES)
    else:
        valkey_sync.script_flush()
    assert await valkey.run_script(ECHO_KEYS, keys, [b"2"], idempotent=True) == b"2"
    assert await valkey.run_script(ECHO_KEYS, keys, [b"3"], idempotent=True) == b"3"


async def test_pipeline_sends_commands_in_one_call(valkey: Valkey) -> None:
    key = valkey.keyspace.key_for("test", b"p")
    replies = await valkey.pipeline([("SET", key, b"1"), ("INCR", key), ("GET", key)])
    assert replies == [True, 2, b"2"]


async def test_scan_finds_keys_on_every_primary(valkey: Valkey) -> None:
    written = {valkey.keyspace.key_for("scan", str(i)) for i in range(50)}
    for key in written:
        await valkey.execute("SET", key, b"x")
    found = {key.decode() async for key in valkey.scan(valkey.keyspace.pattern("scan"))}
    assert found == written


async def test_server_error_reply_is_a_command_error_not_an_outage(valkey: Valkey) -> None:
    key = valkey.keyspace.key_for("test", b"h")
    await valkey.execute("HSET", key, b"f", b"v")
    with pytest.raises(ValkeyCommandError, match="WRONGTYPE"):
        await valkey.execute("GET", key)
    assert valkey.breaker.state is BreakerState.CLOSED


async def test_client_name_is_set_on_connections(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster
) -> None:
    await valkey.execute("SET", valkey.keyspace.key_for("test", b"n"), b"x")
    if isinstance(valkey_sync, RedisCluster):
        per_node = valkey_sync.client_list(target_nodes=RedisCluster.PRIMARIES)
        clients = [c for node in per_node.values() for c in node]
    else:
        clients = valkey_sync.client_list()
    assert any(c["name"] == "cachemw" for c in clients)


async def test_cluster_url_talks_to_a_real_three_primary_cluster(cluster_url: str) -> None:
    async with Valkey(make_settings(cluster_url)) as valkey:
        assert valkey.is_cluster
        await valkey.execute("SET", valkey.keyspace.key_for("test", b"c"), b"1")
        assert len(valkey.client.get_primaries()) == 3  # type: ignore[union-attr]
    client = servers.sync_client(cluster_url)
    try:
        assert client.execute_command("CLUSTER INFO")["cluster_state"] == "ok"
    finally:
        client.close()


async def test_command_against_a_stopped_server_fails_within_budget_and_opens_breaker(
    private_server: EmbeddedValkey,
) -> None:
    budget = 0.2
    valkey = Valkey(
        make_settings(private_server.url, command_timeout=budget, breaker_failure_threshold=3)
    )
    try:
        await valkey.execute("PING")
        private_server.stop()
        elapsed: list[float] = []
        for _ in range(3):
            started = time.perf_counter()
            with pytest.raises(ValkeyUnavailable):
                await valkey.execute("GET", "k")
            elapsed.append(time.perf_counter() - started)
        assert max(elapsed) <= budget + 0.1
        assert valkey.breaker.state is BreakerState.OPEN
        started = time.perf_counter()
        with pytest.raises(BreakerOpen):
            await valkey.execute("GET", "k")
        assert time.perf_counter() - started < 0.005  # fails fast, no network
    finally:
        await valkey.aclose()


async def test_breaker_half_opens_and_recovers_after_the_server_comes_back(
    private_server: EmbeddedValkey,
) -> None:
    valkey = Valkey(
        make_settings(
            private_server.url,
            command_timeout=0.2,
            breaker_failure_threshold=1,
            breaker_reset_timeout=0.3,
        )
    )
    try:
        await valkey.execute("PING")
        private_server.stop()
        with pytest.raises(ValkeyUnavailable):
            await valkey.execute("PING")
        assert valkey.breaker.state is BreakerState.OPEN
        private_server.start()
        await asyncio.sleep(0.35)
        assert valkey.breaker.state is BreakerState.HALF_OPEN
        assert await valkey.execute("PING") is True
        assert valkey.breaker.state is BreakerState.CLOSED
    finally:
        await valkey.aclose()


async def test_full_pool_waits_for_a_connection_instead_of_failing(valkey_url: str) -> None:
    async with Valkey(make_settings(valkey_url, max_connections=2)) as valkey:
        key = valkey.keyspace.key_for("test", b"pool")
        results = await asyncio.gather(*(valkey.execute("INCR", key) for _ in range(50)))
        assert sorted(results) == list(range(1, 51))


async def test_lifespan_closes_the_client(valkey_url: str) -> None:
    valkey = Valkey(make_settings(valkey_url))
    async with valkey.lifespan():
        assert await valkey.ping()
    # After shutdown the pool is closed; a new call opens a fresh connection lazily.
    assert valkey.breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(("policy", "warned"), [("allkeys-lru", True), ("noeviction", False)])
async def test_state_on_an_evicting_valkey_is_warned_about_once_at_start_up(
    policy: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with EmbeddedValkey(maxmemory="64mb", maxmemory_policy=policy) as server:
        valkey = Valkey(make_settings(server.url))
        valkey.holds_state("sessions")
        with caplog.at_level(logging.WARNING, logger="cachemw.valkey"):
            async with valkey.lifespan():
                pass
        warnings = [r for r in caplog.records if "evicts any key" in r.getMessage()]
        assert len(warnings) == (1 if warned else 0)


async def test_eviction_policy_is_read_from_a_cluster(cluster_url: str) -> None:
    async with Valkey(make_settings(cluster_url)) as valkey:
        assert await valkey.eviction_policy() == "noeviction"


async def test_a_cache_only_client_is_never_warned_about_eviction(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with EmbeddedValkey(maxmemory="64mb", maxmemory_policy="allkeys-lfu") as server:
        valkey = Valkey(make_settings(server.url))
        with caplog.at_level(logging.WARNING, logger="cachemw.valkey"):
            async with valkey.lifespan():
                pass
        assert not [r for r in caplog.records if "evicts any key" in r.getMessage()]
