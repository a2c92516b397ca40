"""The multiplexed hot-path connection: replies always reach the caller that asked."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time

import pytest
from redis.crc import key_slot

from cachemw.valkey import Script, Valkey, ValkeyUnavailable
from cachemw.valkey.embedded import EmbeddedCluster, EmbeddedValkey, command
from tests.conftest import make_settings

ECHO = Script("test_echo", source="return ARGV[1]")


async def test_concurrent_callers_each_get_their_own_reply(standalone_url: str) -> None:
    async with Valkey(make_settings(standalone_url)) as valkey:
        keys = [valkey.keyspace.key_for("mx", str(i)) for i in range(200)]
        for i, key in enumerate(keys):
            await valkey.execute("SET", key, str(i))
        replies = await asyncio.gather(*(valkey.execute("GET", key) for key in keys))
        assert replies == [str(i).encode() for i in range(200)]


async def test_cancelled_callers_never_receive_or_steal_another_reply(
    standalone_url: str,
) -> None:
    rng = random.Random(2624)
    async with Valkey(make_settings(standalone_url)) as valkey:
        mismatches = 0
        completed = 0
        deadline = time.monotonic() + 5
        for _round in range(30):
            if time.monotonic() > deadline:
                break
            tasks = [
                asyncio.create_task(valkey.run_script(ECHO, [], [f"v{i}"], idempotent=True))
                for i in range(100)
            ]
            await asyncio.sleep(0)
            for task in rng.sample(tasks, 40):
                task.cancel()
            for i, task in enumerate(tasks):
                try:
                    reply = await task
                except asyncio.CancelledError:
                    continue
                completed += 1
                mismatches += reply != f"v{i}".encode()
        assert completed > 0
        assert mismatches == 0


async def test_script_error_reply_reaches_only_its_caller(standalone_url: str) -> None:
    failing = Script("test_fail", source="return redis.error_reply('BOOM')")
    async with Valkey(make_settings(standalone_url)) as valkey:
        results = await asyncio.gather(
            valkey.run_script(failing, [], idempotent=True),
            valkey.run_script(ECHO, [], ["ok"], idempotent=True),
            return_exceptions=True,
        )
        assert "BOOM" in str(results[0])
        assert results[1] == b"ok"


async def test_password_and_db_from_the_url_are_used() -> None:
    with EmbeddedValkey(extra_args=["--requirepass", "s3cret"]) as server:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
        async with Valkey(make_settings(url)) as valkey:
            await valkey.execute("SET", "k", b"v")
            assert await valkey.execute("GET", "k") == b"v"
        async with Valkey(make_settings(f"redis://127.0.0.1:{server.port}/3")) as anonymous:
            with pytest.raises(ValkeyUnavailable):
                await anonymous.execute("GET", "k")


async def test_black_holed_server_times_out_then_recovers_on_a_fresh_connection(
    private_server: EmbeddedValkey,
) -> None:
    settings = make_settings(private_server.url, command_timeout=0.1, retries=0)
    async with Valkey(settings) as valkey:
        assert await valkey.execute("GET", "k") is None
        assert private_server.pid is not None
        os.kill(private_server.pid, signal.SIGSTOP)  # socket open, nothing answers
        try:
            started = time.perf_counter()
            with pytest.raises(ValkeyUnavailable):
                await valkey.execute("GET", "k")
            assert time.perf_counter() - started < 0.3
        finally:
            os.kill(private_server.pid, signal.SIGCONT)
        await asyncio.sleep(0.6)  # past the stale limit: the wedged connection is replaced
        assert await valkey.execute("GET", "k") is None


async def test_server_restart_is_survived(private_server: EmbeddedValkey) -> None:
    async with Valkey(make_settings(private_server.url, command_timeout=0.5)) as valkey:
        await valkey.execute("GET", "k")
        private_server.stop()
        with pytest.raises(ValkeyUnavailable):
            await valkey.execute("GET", "k")
        private_server.start()
        assert await valkey.execute("GET", "k") is None


async def test_cluster_callers_each_get_their_own_reply(cluster_url: str) -> None:
    async with Valkey(make_settings(cluster_url)) as valkey:
        keys = [valkey.keyspace.key_for("mx", str(i)) for i in range(200)]
        for i, key in enumerate(keys):
            await valkey.execute("SET", key, str(i))
        replies = await asyncio.gather(*(valkey.execute("GET", key) for key in keys))
        assert replies == [str(i).encode() for i in range(200)]


async def test_cluster_fast_path_follows_a_slot_that_moved_to_another_node() -> None:
    with EmbeddedCluster(primaries=2) as cluster:
        async with Valkey(make_settings(cluster.url)) as valkey:
            key = valkey.keyspace.key_for("mx", b"moving")
            await valkey.execute("SET", key, b"before")
            assert await valkey.execute("GET", key) == b"before"  # slot map now cached
            slot = key_slot(key.encode())
            source, target = _owner_and_other(cluster, slot)
            target_id = str(command(target.port, "CLUSTER", "MYID"))
            source_id = str(command(source.port, "CLUSTER", "MYID"))
            command(target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            command(source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            command(source.port, "MIGRATE", "127.0.0.1", target.port, key, 0, 5000)
            for node in cluster.nodes:
                command(node.port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
            # The fast path still points at the old owner: MOVED sends it through redis-py.
            assert await valkey.execute("GET", key) == b"before"
            assert await valkey.execute("GET", key) == b"before"


def _owner_and_other(cluster: EmbeddedCluster, slot: int) -> tuple[EmbeddedValkey, EmbeddedValkey]:
    for node in cluster.nodes:
        for first, last, *_ in command(node.port, "CLUSTER", "SLOTS"):  # type: ignore[union-attr]
            if int(first) <= slot <= int(last):
                owner_port = int(_[0][1])
                owner = next(n for n in cluster.nodes if n.port == owner_port)
                other = next(n for n in cluster.nodes if n.port != owner_port)
                return owner, other
    raise AssertionError("slot not covered")
