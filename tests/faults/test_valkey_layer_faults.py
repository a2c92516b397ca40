"""The Valkey layer under real network faults, standalone and Cluster.

Every byte between cachemw and Valkey crosses a fault proxy (in Cluster, nodes announce the
proxies' ports). Each test names the fault and the promise it checks; budgets are measured.
"""

from __future__ import annotations

import asyncio

import pytest

from cachemw.valkey import (
    BreakerOpen,
    BreakerState,
    Script,
    Valkey,
    ValkeyUnavailable,
    digest,
)
from tests.faults.budgets import SLACK, WARM_UP_BUDGET, Stopwatch, fault_settings
from tests.support.proxied import Proxied

BIG_VALUE = b"v" * 200_000
INCR_SCRIPT = Script(
    "test_faults_incr",
    source="return redis.call('INCR', KEYS[1])",
)
READ_BACK = Script(
    "test_faults_read_back",
    source="redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])",
)


def key_of(valkey: Valkey, name: str) -> str:
    return valkey.keyspace.key_for("faults", name.encode())


def breaker_state(valkey: Valkey) -> BreakerState:
    # A call, not an attribute, so the type checker does not pin the state between asserts.
    return valkey.breaker.state


async def warm_up(valkey: Valkey, key: str) -> None:
    """Open every connection a later call on ``key`` may use, so a fault hits the command
    itself, not a connection handshake: the multiplexed slots (GET) and redis-py's pool."""
    for _ in range(valkey.settings.multiplexed_connections + 1):
        await valkey.execute("GET", key)
    await valkey.execute("EXISTS", key)


async def test_black_holed_server_fails_within_command_budget_and_opens_breaker(
    proxied: Proxied,
) -> None:
    budget = 0.2
    async with Valkey(
        fault_settings(proxied, command_timeout=budget, breaker_failure_threshold=3)
    ) as valkey:
        key = key_of(valkey, "hole")
        await valkey.execute("SET", key, b"v", timeout=WARM_UP_BUDGET)  # set-up, not under test
        proxied.black_hole()
        for _ in range(3):
            with Stopwatch() as watch, pytest.raises(ValkeyUnavailable):
                await valkey.execute("GET", key)
            assert watch.elapsed <= budget + SLACK
        assert breaker_state(valkey) is BreakerState.OPEN
        before = proxied.stats()
        with Stopwatch() as watch, pytest.raises(BreakerOpen):
            await valkey.execute("GET", key)
        assert watch.elapsed < 0.05
        after = proxied.stats()
        assert (after.accepted, after.bytes_from_client) == (
            before.accepted,
            before.bytes_from_client,
        )


async def test_breaker_half_opens_and_recovers_when_server_returns(proxied: Proxied) -> None:
    reset_timeout = 0.3
    async with Valkey(
        fault_settings(
            proxied,
            command_timeout=0.2,
            breaker_failure_threshold=1,
            breaker_reset_timeout=reset_timeout,
        )
    ) as valkey:
        key = key_of(valkey, "recover")
        await valkey.execute("SET", key, b"back")
        proxied.black_hole()
        with pytest.raises(ValkeyUnavailable):
            await valkey.execute("GET", key)
        assert breaker_state(valkey) is BreakerState.OPEN
        proxied.clear()
        await asyncio.sleep(reset_timeout)
        assert breaker_state(valkey) is BreakerState.HALF_OPEN
        assert await valkey.execute("GET", key) == b"back"
        assert breaker_state(valkey) is BreakerState.CLOSED


async def test_failed_probe_reopens_breaker_while_server_is_still_black_holed(
    proxied: Proxied,
) -> None:
    budget, reset_timeout = 0.2, 0.3
    async with Valkey(
        fault_settings(
            proxied,
            command_timeout=budget,
            breaker_failure_threshold=1,
            breaker_reset_timeout=reset_timeout,
        )
    ) as valkey:
        key = key_of(valkey, "probe")
        await valkey.execute("SET", key, b"v", timeout=WARM_UP_BUDGET)  # set-up, not under test
        proxied.black_hole()
        with pytest.raises(ValkeyUnavailable):
            await valkey.execute("GET", key)
        await asyncio.sleep(reset_timeout)
        with Stopwatch() as watch, pytest.raises(ValkeyUnavailable) as probe:
            await valkey.execute("GET", key)
        assert not isinstance(probe.value, BreakerOpen)  # the probe did go to the network
        assert watch.elapsed <= budget + SLACK
        assert breaker_state(valkey) is BreakerState.OPEN


async def test_half_open_breaker_lets_one_probe_through_and_fails_the_rest_fast(
    proxied: Proxied,
) -> None:
    reset_timeout = 0.3
    async with Valkey(
        fault_settings(
            proxied,
            command_timeout=0.3,
            breaker_failure_threshold=1,
            breaker_reset_timeout=reset_timeout,
        )
    ) as valkey:
        key = key_of(valkey, "one-probe")
        await valkey.execute("SET", key, b"v", timeout=WARM_UP_BUDGET)  # set-up, not under test
        proxied.black_hole()
        with pytest.raises(ValkeyUnavailable):
            await valkey.execute("GET", key)
        await asyncio.sleep(reset_timeout)
        probe = asyncio.create_task(valkey.execute("GET", key))
        await asyncio.sleep(0.02)  # the probe is now waiting on the black hole
        with Stopwatch() as watch, pytest.raises(BreakerOpen):
            await valkey.execute("GET", key)
        assert watch.elapsed < 0.05
        with pytest.raises(ValkeyUnavailable):
            await probe


async def test_refused_connections_fail_fast(proxied: Proxied) -> None:
    budget = 2.0
    async with Valkey(fault_settings(proxied, command_timeout=budget)) as valkey:
        key = key_of(valkey, "refused")
        await valkey.execute("SET", key, b"v", timeout=WARM_UP_BUDGET)  # set-up, not under test
        proxied.refuse_connections()
        with Stopwatch() as watch, pytest.raises(ValkeyUnavailable):
            await valkey.execute("GET", key)
        # Refusal is an immediate answer: no reason to sit out the budget.
        assert watch.elapsed < 0.5


async def test_refusing_server_that_comes_back_is_used_again(proxied: Proxied) -> None:
    async with Valkey(fault_settings(proxied, command_timeout=1.0)) as valkey:
        key = key_of(valkey, "refused-back")
        await valkey.execute("SET", key, b"again")
        proxied.refuse_connections()
        with pytest.raises(ValkeyUnavailable):
            await valkey.execute("GET", key)
        proxied.clear()
        assert await valkey.execute("GET", key) == b"again"


@pytest.mark.parametrize("cut", ["reset", "close"])
async def test_reset_mid_reply_is_unavailable_not_crash(proxied: Proxied, cut: str) -> None:
    budget = 1.0
    async with Valkey(fault_settings(proxied, command_timeout=budget)) as valkey:
        key = key_of(valkey, "mid-reply")
        await valkey.execute("SET", key, BIG_VALUE)
        if cut == "reset":
            proxied.reset_after(10_000)
        else:
            proxied.close_after(10_000)
        with Stopwatch() as watch, pytest.raises(ValkeyUnavailable):
            await valkey.execute("GET", key)
        assert watch.elapsed <= budget + SLACK
        proxied.clear()
        assert await valkey.execute("GET", key) == BIG_VALUE


async def test_slow_server_over_budget_times_out_within_budget(proxied: Proxied) -> None:
    budget = 0.15
    async with Valkey(fault_settings(proxied, command_timeout=budget)) as valkey:
        key = key_of(valkey, "slow")
        await valkey.execute("SET", key, b"v", timeout=WARM_UP_BUDGET)  # set-up, not under test
        proxied.add_latency(0.6)
        with Stopwatch() as watch, pytest.raises(ValkeyUnavailable):
            await valkey.execute("GET", key)
        assert watch.elapsed <= budget + SLACK


async def test_slow_server_within_budget_still_answers(proxied: Proxied) -> None:
    async with Valkey(fault_settings(proxied, command_timeout=1.0)) as valkey:
        key = key_of(valkey, "slow-ok")
        await valkey.execute("SET", key, b"late but fine")
        proxied.add_latency(0.05, jitter=0.02)
        assert await valkey.execute("GET", key) == b"late but fine"


async def test_reply_arriving_after_a_timeout_is_never_read_by_the_next_call(
    proxied: Proxied,
) -> None:
    async with Valkey(fault_settings(proxied, command_timeout=1.0)) as valkey:
        tag = digest("late reply")  # one slot: in Cluster too, both share a connection pool
        first, second = (valkey.keyspace.key("faults", tag, part) for part in ("1", "2"))
        await valkey.execute("SET", first, b"first")
        await valkey.execute("SET", second, b"second")
        proxied.add_latency(0.3)
        with pytest.raises(ValkeyUnavailable):
            await valkey.execute("GET", first, timeout=0.1)
        await asyncio.sleep(0.3)  # the late reply to GET first has arrived by now
        proxied.clear()
        assert await valkey.execute("GET", second) == b"second"


async def test_bandwidth_starved_large_reply_times_out_within_budget(proxied: Proxied) -> None:
    budget = 0.3
    async with Valkey(fault_settings(proxied, command_timeout=budget)) as valkey:
        key = key_of(valkey, "starved")
        await valkey.execute("SET", key, BIG_VALUE)
        proxied.limit_bandwidth(50_000)  # 200 KB needs 4 s
        with Stopwatch() as watch, pytest.raises(ValkeyUnavailable):
            await valkey.execute("GET", key)
        assert watch.elapsed <= budget + SLACK
        proxied.clear()
        assert await valkey.execute("GET", key) == BIG_VALUE


async def test_replies_trickling_in_tiny_segments_are_parsed_intact(proxied: Proxied) -> None:
    async with Valkey(fault_settings(proxied, command_timeout=2.0)) as valkey:
        key = key_of(valkey, "sliced")
        await valkey.execute("SET", key, b"x" * 3000)
        proxied.slice_segments(7)
        replies = await valkey.pipeline(
            [("SET", key, b"\r\n$-1\r\n*2"), ("GET", key), ("STRLEN", key), ("TYPE", key)]
        )
        assert replies[1:] == [b"\r\n$-1\r\n*2", 9, b"string"]


async def test_non_idempotent_write_is_not_retried(proxied: Proxied) -> None:
    async with Valkey(fault_settings(proxied, command_timeout=1.0)) as valkey:
        key = key_of(valkey, "incr")
        await warm_up(valkey, key)
        calls_before = proxied.command_calls("incr")
        proxied.proxy_for_key(key).drop_replies(times=1)
        with pytest.raises(ValkeyUnavailable):
            await valkey.execute("INCR", key, idempotent=False)
        proxied.clear()
        assert await valkey.execute("GET", key) == b"1"
        assert proxied.command_calls("incr") - calls_before == 1


async def test_non_idempotent_script_is_not_retried(proxied: Proxied) -> None:
    async with Valkey(fault_settings(proxied, command_timeout=1.0)) as valkey:
        key = key_of(valkey, "script-incr")
        await warm_up(valkey, key)
        await valkey.run_script(INCR_SCRIPT, keys=[key], idempotent=False)  # node caches it
        proxied.proxy_for_key(key).drop_replies(times=1)
        with pytest.raises(ValkeyUnavailable):
            await valkey.run_script(INCR_SCRIPT, keys=[key], idempotent=False)
        proxied.clear()
        assert await valkey.execute("GET", key) == b"2"


async def test_non_idempotent_pipeline_is_not_retried(proxied: Proxied) -> None:
    async with Valkey(fault_settings(proxied, command_timeout=1.0)) as valkey:
        key = key_of(valkey, "pipe-incr")
        await warm_up(valkey, key)
        proxied.proxy_for_key(key).drop_replies(times=1)
        with pytest.raises(ValkeyUnavailable):
            await valkey.pipeline([("INCR", key), ("INCR", key)], idempotent=False)
        proxied.clear()
        assert await valkey.execute("GET", key) == b"2"


async def test_idempotent_read_is_retried_once_within_budget(proxied: Proxied) -> None:
    budget = 1.0
    async with Valkey(fault_settings(proxied, command_timeout=budget, retries=1)) as valkey:
        key = key_of(valkey, "retried")
        await valkey.execute("SET", key, b"second try")
        await warm_up(valkey, key)
        calls_before = proxied.command_calls("get")
        proxied.proxy_for_key(key).drop_replies(times=1)
        with Stopwatch() as watch:
            assert await valkey.execute("GET", key) == b"second try"
        assert watch.elapsed <= budget + SLACK
        assert proxied.command_calls("get") - calls_before == 2


async def test_idempotent_read_gives_up_after_bounded_retries_within_budget(
    proxied: Proxied,
) -> None:
    budget = 1.0
    async with Valkey(fault_settings(proxied, command_timeout=budget, retries=1)) as valkey:
        key = key_of(valkey, "gives-up")
        await valkey.execute("SET", key, b"v", timeout=WARM_UP_BUDGET)  # set-up, not under test
        await warm_up(valkey, key)
        calls_before = proxied.command_calls("get")
        proxied.proxy_for_key(key).drop_replies()
        with Stopwatch() as watch, pytest.raises(ValkeyUnavailable):
            await valkey.execute("GET", key)
        assert watch.elapsed <= budget + SLACK
        assert 1 <= proxied.command_calls("get") - calls_before <= 2


async def test_lua_script_survives_script_flush(proxied: Proxied) -> None:
    async with Valkey(fault_settings(proxied, command_timeout=2.0)) as valkey:
        key = key_of(valkey, "script")
        proxied.slice_segments(5)  # and arrives in small pieces
        assert await valkey.run_script(READ_BACK, keys=[key], args=[b"one"], idempotent=True) == (
            b"one"
        )
        for port in proxied.primary_ports:
            proxied.admin(port, "SCRIPT", "FLUSH")
        assert await valkey.run_script(READ_BACK, keys=[key], args=[b"two"], idempotent=True) == (
            b"two"
        )
