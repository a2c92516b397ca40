"""Server states that refuse work (OOM, READONLY, LOADING, CLUSTERDOWN), produced for real.

Each is Valkey answering with an error reply rather than the network failing; the layer must
map it to ``ValkeyUnavailable`` (features apply their policy), never ``ValkeyCommandError``
(which means a bug) and never a crash. Standalone cases run on both client paths: the
multiplexed fast path (GET, scripts) and redis-py (everything else, or all with it off).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from cachemw.valkey import BreakerState, Script, Valkey, ValkeyUnavailable
from cachemw.valkey.embedded import EmbeddedCluster, EmbeddedValkey, command
from tests.conftest import make_settings
from tests.faults.budgets import SLACK, WARM_UP_BUDGET, Stopwatch

WRITE_SCRIPT = Script("test_faults_write", source="return redis.call('SET', KEYS[1], ARGV[1])")
CLIENT_PATHS = pytest.mark.parametrize(
    "multiplexed_connections", [2, 0], ids=["multiplexed", "redispy"]
)


def wait_for(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout}s")


def error_code(exc: BaseException) -> str:
    """The server's error code behind a ValkeyUnavailable (redis-py strips it from the text)."""
    cause = exc.__cause__
    code = getattr(cause, "status_code", None)
    return str(code) if code else str(cause).split(" ", 1)[0]


OOM_AS_COMMAND_ERROR = (
    "cachemw/valkey/client.py Valkey._call: redis-py parses '-OOM ...' into OutOfMemoryError "
    "with the 'OOM' prefix stripped from str(exc), so message.startswith(('OOM',)) never "
    "matches on the redis-py path and OOM becomes ValkeyCommandError instead of a "
    "breaker-neutral ValkeyUnavailable"
)


@pytest.fixture
def full_noeviction_server() -> Iterator[EmbeddedValkey]:
    """A server at ``maxmemory 2mb`` under ``noeviction``, filled until it refuses writes.

    (An idle server already uses about 1 MB, so 1mb would refuse the very first write.)
    """
    with EmbeddedValkey(maxmemory="2mb", maxmemory_policy="noeviction") as server:
        refusal = ""
        for index in range(100):  # full after ~20 values; bounded either way
            try:
                command(server.port, "SET", f"fill:{index}", "f" * 50_000)
            except RuntimeError as exc:
                refusal = str(exc)
                break
        assert refusal.startswith("OOM"), "maxmemory 2mb was never reached"
        yield server


async def write_one_more(valkey: Valkey, write: str) -> None:
    if write == "SET":
        await valkey.execute("SET", "one-more", b"x" * 50_000, idempotent=False)
    else:
        await valkey.run_script(
            WRITE_SCRIPT, keys=["one-more"], args=[b"x" * 50_000], idempotent=False
        )


@pytest.mark.parametrize(
    ("write", "multiplexed_connections"),
    [
        pytest.param(
            "SET",
            2,
            id="command-redispy",
        ),
        pytest.param("script", 2, id="script-multiplexed"),
        pytest.param(
            "script",
            0,
            id="script-redispy",
        ),
    ],
)
async def test_oom_under_noeviction_is_unavailable_without_opening_breaker(
    full_noeviction_server: EmbeddedValkey, write: str, multiplexed_connections: int
) -> None:
    threshold = 2
    async with Valkey(
        make_settings(
            full_noeviction_server.url,
            breaker_failure_threshold=threshold,
            multiplexed_connections=multiplexed_connections,
        )
    ) as valkey:
        for _ in range(threshold + 1):
            with pytest.raises(ValkeyUnavailable) as raised:
                await write_one_more(valkey, write)
            assert error_code(raised.value) == "OOM"
        # The server answers: the breaker stays closed so reads keep being served.
        assert valkey.breaker.state is BreakerState.CLOSED
        assert await valkey.execute("GET", "fill:0") == b"f" * 50_000


@CLIENT_PATHS
async def test_readonly_replica_write_is_unavailable(multiplexed_connections: int) -> None:
    with (
        EmbeddedValkey() as primary,
        EmbeddedValkey(extra_args=["--replicaof", "127.0.0.1", str(primary.port)]) as replica,
    ):
        async with Valkey(
            make_settings(replica.url, multiplexed_connections=multiplexed_connections)
        ) as valkey:
            with pytest.raises(ValkeyUnavailable) as raised:
                await valkey.execute("SET", "k", b"v", idempotent=False)
            assert error_code(raised.value) == "READONLY"
            with pytest.raises(ValkeyUnavailable) as raised:
                await valkey.run_script(WRITE_SCRIPT, keys=["k"], args=[b"v"], idempotent=False)
            assert error_code(raised.value) == "READONLY"
            assert await valkey.execute("GET", "k") is None  # reads are still served


@CLIENT_PATHS
async def test_loading_server_is_unavailable_then_serves_when_loaded(
    multiplexed_connections: int,
) -> None:
    # key-load-delay slows loading (µs per key); a small events interval lets the server
    # answer -LOADING while it loads instead of staying silent.
    slow_loader = [
        "--key-load-delay", "50",
        "--loading-process-events-interval-bytes", "1024",
    ]  # fmt: skip
    with EmbeddedValkey(extra_args=slow_loader) as server:
        sync = redis.Redis(port=server.port)
        pipe = sync.pipeline(transaction=False)
        for index in range(10_000):
            pipe.set(f"k{index}", b"loaded")
        pipe.execute()
        sync.close()
        command(server.port, "SAVE")
        server.stop()
        restart = threading.Thread(target=server.start, kwargs={"timeout": 30.0})
        restart.start()
        async with Valkey(
            make_settings(
                server.url,
                command_timeout=0.5,
                breaker_failure_threshold=1000,  # connection refused while it restarts
                multiplexed_connections=multiplexed_connections,
            )
        ) as valkey:
            codes: list[str] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and restart.is_alive():
                try:
                    await valkey.execute("GET", "k1")
                except ValkeyUnavailable as exc:
                    codes.append(error_code(exc))
                    if codes[-1] == "LOADING":
                        break
                await asyncio.sleep(0.01)
            await asyncio.to_thread(restart.join, 30)
            assert "LOADING" in codes, codes[-3:]
            assert await valkey.execute("GET", "k1") == b"loaded"


@pytest.fixture(scope="module")
def one_node_cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(primaries=1) as cluster:
        yield cluster


@pytest.mark.parametrize("which", ["other slot", "own slot"])
async def test_clusterdown_is_unavailable_and_recovers(
    one_node_cluster: EmbeddedCluster, which: str
) -> None:
    budget = 1.0
    port = one_node_cluster.nodes[0].port
    async with Valkey(make_settings(one_node_cluster.url, command_timeout=budget)) as valkey:
        key = valkey.keyspace.key_for("faults", b"clusterdown")
        await valkey.execute("SET", key, b"v", timeout=WARM_UP_BUDGET)  # set-up, not under test
        slot = key_slot(key.encode())
        removed = slot if which == "own slot" else (slot + 1) % 16384
        command(port, "CLUSTER", "DELSLOTS", removed)
        wait_for(
            lambda: "cluster_state:fail" in str(command(port, "CLUSTER", "INFO")),
            5,
            "cluster_state:fail",
        )
        with Stopwatch() as watch, pytest.raises(ValkeyUnavailable) as raised:
            await valkey.execute("GET", key)
        assert watch.elapsed <= budget + SLACK
        assert error_code(raised.value) == "CLUSTERDOWN"
        command(port, "CLUSTER", "ADDSLOTS", removed)
        wait_for(
            lambda: "cluster_state:ok" in str(command(port, "CLUSTER", "INFO")),
            10,
            "cluster_state:ok",
        )
        assert await valkey.execute("GET", key) == b"v"
