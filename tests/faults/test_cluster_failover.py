"""A Cluster primary killed while replicas stand by: the layer serves again within bounded
time, with nothing it acknowledged (and saw replicated) lost, and its breaker recovers by
itself. Every byte crosses a proxy; replicas announce their proxy ports too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from cachemw.valkey import BreakerState, Valkey, ValkeyUnavailable
from tests.faults.budgets import fault_settings
from tests.support.proxied import ProxiedCluster

RECOVERY_BOUND = 15.0  # node timeout 1 s + failure reports + election, on a loaded CI box


@pytest.fixture(scope="module")
def cluster_with_replicas() -> Iterator[ProxiedCluster]:
    # A short node timeout keeps failure detection (and this test) quick.
    with ProxiedCluster(primaries=3, replicas_per_primary=1, node_timeout_ms=1000) as cluster:
        yield cluster


def replication_offset(cluster: ProxiedCluster, index: int) -> int:
    info = str(cluster.admin(cluster.nodes[index].port, "INFO", "replication"))
    for line in info.splitlines():
        if line.startswith("master_repl_offset:"):
            return int(line.split(":", 1)[1])
    raise AssertionError("no master_repl_offset in INFO replication")


def replicated(cluster: ProxiedCluster, primary: int, replica: int) -> bool:
    """The replica has applied everything the primary has written so far."""
    return replication_offset(cluster, replica) >= replication_offset(cluster, primary)


def keys_on(cluster: ProxiedCluster, valkey: Valkey, primary: int, count: int) -> list[str]:
    keys: list[str] = []
    index = 0
    while len(keys) < count:
        key = valkey.keyspace.key_for("failover", f"{primary}-{index}".encode())
        if cluster.proxy_for_key(key) is cluster.proxies[primary]:
            keys.append(key)
        index += 1
    return keys


@pytest.mark.parametrize(
    ("primary", "multiplexed_connections"),
    [(0, 2), (1, 0)],
    ids=["multiplexed", "redispy"],  # each kills another primary of the same cluster
)
async def test_primary_failover_serves_again_within_bounded_time_without_losing_data(
    cluster_with_replicas: ProxiedCluster, primary: int, multiplexed_connections: int
) -> None:
    cluster = cluster_with_replicas
    replica = cluster.primaries + primary  # REPLICATE paired replica i with primary i
    async with Valkey(
        fault_settings(
            cluster,
            command_timeout=0.5,
            multiplexed_connections=multiplexed_connections,
            breaker_failure_threshold=5,
            breaker_reset_timeout=0.5,
        )
    ) as valkey:
        keys = keys_on(cluster, valkey, primary, 10)
        for key in keys:
            await valkey.execute("SET", key, key.encode(), timeout=2.0)
            assert await valkey.execute("GET", key, timeout=2.0) == key.encode()
        deadline = time.monotonic() + 10
        while not replicated(cluster, primary, replica):
            assert time.monotonic() < deadline, "replica never caught up"
            await asyncio.sleep(0.05)

        cluster.nodes[primary].kill()
        killed_at = time.monotonic()
        recovered_after: float | None = None
        while time.monotonic() - killed_at < RECOVERY_BOUND:
            try:
                values = [await valkey.execute("GET", key) for key in keys]
                await valkey.execute("SET", keys[0], keys[0].encode(), idempotent=False)
            except ValkeyUnavailable:
                await asyncio.sleep(0.1)
                continue
            recovered_after = time.monotonic() - killed_at
            break
        print(f"recovered {recovered_after}")
        assert recovered_after is not None, f"not serving {RECOVERY_BOUND}s after the kill"
        assert values == [key.encode() for key in keys]
        assert valkey.breaker.state is BreakerState.CLOSED
