"""Fail open: with Valkey down, slow or black-holed the app answers, never a 5xx."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx

from cachemw.cache import CacheMiddleware
from cachemw.metrics import Metrics
from cachemw.valkey import BreakerState, Valkey, ValkeySettings
from cachemw.valkey.embedded import EmbeddedValkey
from tests.cache.conftest import Origin, make_client
from tests.support.fault_proxy import FaultProxy

BUDGET = 0.05  # the default per-call budget (ValkeySettings.command_timeout)


async def timed_gets(client: httpx.AsyncClient, count: int) -> tuple[list[int], list[float]]:
    statuses: list[int] = []
    durations: list[float] = []
    for i in range(count):
        started = time.perf_counter()
        response = await client.get(f"/item/{i % 10}")
        durations.append(time.perf_counter() - started)
        statuses.append(response.status_code)
    return statuses, durations


async def test_valkey_stopped_requests_are_served_by_the_app_within_budget(
    private_server: EmbeddedValkey,
) -> None:
    origin = Origin()
    async with make_client(origin) as plain:
        _, baseline = await timed_gets(plain, 100)
    valkey = Valkey(ValkeySettings(url=private_server.url, command_timeout=BUDGET))
    metrics = Metrics()
    cache = CacheMiddleware(origin, valkey=valkey, metrics=metrics)
    try:
        async with make_client(cache) as client:
            await client.get("/warm")
            private_server.stop()
            statuses, durations = await timed_gets(client, 100)
    finally:
        await cache.aclose()
        await valkey.aclose()
    assert statuses == [200] * 100
    assert statistics.median(durations) - statistics.median(baseline) < BUDGET
    assert valkey.breaker.state is not BreakerState.CLOSED  # it stopped paying the budget
    assert metrics.total("cachemw_cache_errors_total") >= 1


async def test_black_holed_valkey_costs_at_most_the_budget(
    private_server: EmbeddedValkey,
) -> None:
    host, port = private_server.url.split("//")[1].split("/")[0].split(":")
    async with FaultProxy((host, int(port))) as proxy:
        valkey = Valkey(
            ValkeySettings(url=proxy.url, command_timeout=BUDGET, breaker_failure_threshold=1000)
        )
        origin = Origin()
        cache = CacheMiddleware(origin, valkey=valkey)
        try:
            async with make_client(cache) as client:
                await client.get("/warm")
                proxy.black_hole(duration=5)
                statuses, durations = await timed_gets(client, 5)
        finally:
            await cache.aclose()
            await valkey.aclose()
    assert statuses == [200] * 5
    # Lookup budget, plus the lock attempt's budget is never reached: lookup failed first.
    assert max(durations) < BUDGET * 2 + 0.1


async def test_valkey_back_after_outage_caches_again(private_server: EmbeddedValkey) -> None:
    settings = ValkeySettings(url=private_server.url, command_timeout=BUDGET)
    valkey = Valkey(settings, breaker_reset_timeout=0.1)
    origin = Origin()
    cache = CacheMiddleware(origin, valkey=valkey)
    try:
        async with make_client(cache) as client:
            private_server.stop()
            for _ in range(10):
                assert (await client.get("/r")).status_code == 200
            private_server.start()
            deadline = time.monotonic() + 5
            status = ""
            while time.monotonic() < deadline and not status.startswith("cachemw; hit"):
                response = await client.get("/r")
                status = response.headers["cache-status"]
                await asyncio.sleep(0.05)
    finally:
        await cache.aclose()
        await valkey.aclose()
    assert status.startswith("cachemw; hit")
