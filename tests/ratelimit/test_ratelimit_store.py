"""The rate-limit scripts against real Valkey (standalone and cluster): exact counting."""

from __future__ import annotations

import asyncio
import time
from typing import cast

import redis
from redis.cluster import RedisCluster

from cachemw.http.ratelimit import Rule
from cachemw.ratelimit.store import RateLimitStore
from cachemw.valkey import Valkey
from tests.support.servers import all_keys


def log_keys(sync: redis.Redis | RedisCluster) -> list[bytes]:
    return [k for k in all_keys(sync) if b":log:" in k]


def scored(sync: redis.Redis | RedisCluster, key: bytes) -> list[tuple[bytes, float]]:
    return cast(list[tuple[bytes, float]], sync.zrange(key, 0, -1, withscores=True))


async def test_sliding_log_admits_up_to_the_limit_then_rejects(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="3/minute"))
    admitted = [(await store.hit(bucket, "ip:1")).admitted for _ in range(5)]
    assert admitted == [True, True, True, False, False]


async def test_rejected_requests_are_not_recorded(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster
) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="3/minute"))
    for _ in range(10):
        await store.hit(bucket, "ip:1")
    (key,) = log_keys(valkey_sync)
    assert valkey_sync.zcard(key) == 3


async def test_remaining_counts_down_and_reaches_zero(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="3/minute"))
    remaining = [(await store.hit(bucket, "ip:1")).statuses[0].remaining for _ in range(4)]
    assert remaining == [2, 1, 0, 0]


async def test_identities_have_separate_buckets(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="1/minute"))
    assert (await store.hit(bucket, "ip:1")).admitted
    assert (await store.hit(bucket, "ip:2")).admitted
    assert not (await store.hit(bucket, "ip:1")).admitted


async def test_retry_with_the_same_request_id_counts_once(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster
) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="2/minute"))
    first = await store.hit(bucket, "ip:1", request_id="req-1")
    replayed = await store.hit(bucket, "ip:1", request_id="req-1")
    assert first.admitted
    assert replayed.admitted
    assert replayed.statuses[0].remaining == 1
    (key,) = log_keys(valkey_sync)
    assert valkey_sync.zcard(key) == 1
    assert (await store.hit(bucket, "ip:1")).admitted  # the second unit is still there


async def test_several_windows_admit_all_or_record_none(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster
) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="5/10s;2/hour"))
    results = [await store.hit(bucket, "ip:1") for _ in range(4)]
    assert [r.admitted for r in results] == [True, True, False, False]
    assert [s.violated for s in results[2].statuses] == [False, True]
    counts = sorted(valkey_sync.zcard(k) for k in log_keys(valkey_sync))
    assert counts == [2, 2]  # the 10 s window did not record the rejected requests


async def test_cost_takes_several_units(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="10/minute", cost=4))
    results = [await store.hit(bucket, "ip:1") for _ in range(3)]
    assert [r.admitted for r in results] == [True, True, False]
    assert results[1].statuses[0].remaining == 2


async def test_log_expires_with_its_window(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster
) -> None:
    store = RateLimitStore(valkey)
    await store.hit(store.bucket(Rule(name="t", limit="3/10s")), "ip:1")
    (key,) = log_keys(valkey_sync)
    assert 9000 < valkey_sync.pttl(key) <= 10000


async def test_log_is_scored_by_the_server_clock(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster
) -> None:
    store = RateLimitStore(valkey)
    await store.hit(store.bucket(Rule(name="t", limit="3/10s")), "ip:1")
    (key,) = log_keys(valkey_sync)
    ((_, score),) = scored(valkey_sync, key)
    seconds, micros = (int(part) for part in await valkey.execute("TIME"))
    # Microseconds since the epoch on the server's clock (one host here, so one clock).
    assert 0 <= seconds * 1_000_000 + micros - score < 2_000_000


async def test_rejection_reset_is_when_the_oldest_unit_leaves(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="2/10s"))
    await store.hit(bucket, "ip:1")
    await store.hit(bucket, "ip:1")
    rejected = await store.hit(bucket, "ip:1")
    assert 9_000_000 < rejected.statuses[0].reset_micros <= 10_000_000


async def test_window_boundary_never_admits_more_than_the_limit_in_any_window(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster
) -> None:
    # Scaled down from "10 at 9.9 s + 10 at 10.1 s": bursts just before and just after a
    # 1 s window edge; a fixed window would admit 20 within 0.2 s.
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="10/second"))
    admitted_at: dict[bytes, float] = {}

    async def burst() -> None:
        results = await asyncio.gather(*(store.hit(bucket, "ip:1") for _ in range(10)))
        keys = log_keys(valkey_sync)
        if keys and any(r.admitted for r in results):
            admitted_at.update(scored(valkey_sync, keys[0]))

    start = time.monotonic()
    await burst()
    for offset in (0.9, 0.95, 1.05, 1.1, 1.9, 2.05):
        await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
        await burst()
    times = sorted(admitted_at.values())
    assert len(times) >= 20
    for i, first in enumerate(times):
        in_window = [t for t in times[i:] if t < first + 1_000_000]
        assert len(in_window) <= 10


async def test_sliding_counter_admits_up_to_the_limit_then_rejects(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="3/minute", algorithm="sliding_counter"))
    admitted = [(await store.hit(bucket, "ip:1")).admitted for _ in range(5)]
    assert admitted == [True, True, True, False, False]


async def test_sliding_counter_retry_counts_once(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="2/minute", algorithm="sliding_counter"))
    await store.hit(bucket, "ip:1", request_id="r1")
    await store.hit(bucket, "ip:1", request_id="r1")
    assert (await store.hit(bucket, "ip:1")).admitted
    assert not (await store.hit(bucket, "ip:1")).admitted


async def test_sliding_counter_memory_is_constant(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster
) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="1000/minute", algorithm="sliding_counter"))
    for _ in range(50):
        await store.hit(bucket, "ip:1")
    (key,) = [k for k in all_keys(valkey_sync) if k.endswith(b":ctr:60s")]
    assert valkey_sync.hlen(key) <= 2
    assert sum(int(v) for v in valkey_sync.hvals(key)) == 50


async def test_sliding_counter_several_windows_admit_all_or_record_none(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="5/10s;2/hour", algorithm="sliding_counter"))
    results = [await store.hit(bucket, "ip:1") for _ in range(4)]
    assert [r.admitted for r in results] == [True, True, False, False]
    assert results[3].statuses[0].remaining == 3  # the 10 s window holds the 2 admitted only


async def test_sliding_counter_rejection_says_when_to_retry(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="2/10s", algorithm="sliding_counter"))
    await store.hit(bucket, "ip:1")
    await store.hit(bucket, "ip:1")
    rejected = await store.hit(bucket, "ip:1")
    assert 0 < rejected.statuses[0].reset_micros <= 20_000_000


async def test_lease_admits_up_to_max_in_flight_and_release_frees_a_slot(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    leases = [await store.acquire("c", "ip:1", max_in_flight=2, lease_seconds=30) for _ in range(3)]
    assert [lease.admitted for lease in leases] == [True, True, False]
    assert leases[2].retry_after_micros > 29_000_000
    await store.release(leases[0])
    assert (await store.acquire("c", "ip:1", max_in_flight=2, lease_seconds=30)).admitted


async def test_lease_of_a_crashed_holder_expires_by_itself(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    assert (await store.acquire("c", "ip:1", max_in_flight=1, lease_seconds=0.2)).admitted
    assert not (await store.acquire("c", "ip:1", max_in_flight=1, lease_seconds=0.2)).admitted
    await asyncio.sleep(0.25)
    assert (await store.acquire("c", "ip:1", max_in_flight=1, lease_seconds=0.2)).admitted


async def test_request_ids_are_unique_across_stores(valkey: Valkey) -> None:
    first, second = RateLimitStore(valkey), RateLimitStore(valkey)
    ids = {first.new_request_id() for _ in range(100)} | {
        second.new_request_id() for _ in range(100)
    }
    assert len(ids) == 200


async def test_gcra_admits_a_burst_of_the_limit_then_rejects(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="3/minute", algorithm="gcra"))
    results = [await store.hit(bucket, "ip:1") for _ in range(5)]
    assert [r.admitted for r in results] == [True, True, True, False, False]
    assert [r.statuses[0].remaining for r in results[:3]] == [2, 1, 0]


async def test_gcra_rejection_says_when_one_unit_returns(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="3/minute", algorithm="gcra"))
    for _ in range(3):
        await store.hit(bucket, "ip:1")
    rejected = await store.hit(bucket, "ip:1")
    assert 19_000_000 < rejected.statuses[0].reset_micros <= 20_000_000  # 60 s / 3


async def test_gcra_units_return_at_the_steady_rate(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="10/second", algorithm="gcra"))
    for _ in range(10):
        await store.hit(bucket, "ip:1")
    assert not (await store.hit(bucket, "ip:1")).admitted
    await asyncio.sleep(0.25)  # two emission intervals of 0.1 s
    admitted = [(await store.hit(bucket, "ip:1")).admitted for _ in range(3)]
    assert admitted == [True, True, False]


async def test_gcra_retry_counts_once_and_windows_admit_all_or_none(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="5/10s;2/hour", algorithm="gcra"))
    await store.hit(bucket, "ip:1", request_id="r1")
    await store.hit(bucket, "ip:1", request_id="r1")
    results = [await store.hit(bucket, "ip:1") for _ in range(2)]
    assert [r.admitted for r in results] == [True, False]
    assert results[1].statuses[0].remaining == 3  # the 10 s window recorded two requests


async def test_sliding_log_takes_a_large_cost_in_one_call(valkey: Valkey) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="5000/minute", cost=2600))
    results = [await store.hit(bucket, "ip:1") for _ in range(2)]
    assert [r.admitted for r in results] == [True, False]
    assert results[0].statuses[0].remaining == 2400


async def test_replay_of_the_request_that_filled_the_window_is_still_admitted(
    valkey: Valkey,
) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="1/minute;5/hour"))
    assert (await store.hit(bucket, "ip:1", request_id="only")).admitted
    replayed = await store.hit(bucket, "ip:1", request_id="only")
    assert replayed.admitted
    assert [s.remaining for s in replayed.statuses] == [0, 4]
    assert not (await store.hit(bucket, "ip:1")).admitted


async def test_sliding_counter_weights_the_previous_window_by_its_overlap(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster
) -> None:
    store = RateLimitStore(valkey)
    bucket = store.bucket(Rule(name="t", limit="100/minute", algorithm="sliding_counter"))
    await store.hit(bucket, "ip:1")  # creates the counts hash
    (key,) = [k for k in all_keys(valkey_sync) if k.endswith(b":ctr:60s")]
    seconds, micros = (int(part) for part in await valkey.execute("TIME"))
    now = seconds * 1_000_000 + micros
    index, elapsed = divmod(now, 60_000_000)
    valkey_sync.hset(key, str(index - 1), 60)  # a full previous window of 60 requests
    decision = await store.hit(bucket, "ip:1")
    # previous x (60 s - elapsed) / 60 s, plus the 2 of this window
    expected_used = 60 * (60_000_000 - elapsed) / 60_000_000 + 2
    assert abs((100 - decision.statuses[0].remaining) - expected_used) <= 1.5
