"""A cache-busting flood (unique URLs) against a small ``allkeys-lru`` cache instance.

The README's deployment advice: the cache on its own instance (``allkeys-*`` eviction),
sessions and rate-limit counters on another (``noeviction``). These tests show why: with
the advice followed the flood evicts only cache entries; with one shared evicting instance
it evicts a logged-in visitor's session, which silently logs them out.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis

from cachemw.valkey import Valkey, ValkeySettings
from cachemw.valkey.embedded import EmbeddedValkey
from tests.hardening.stack import PAGE_SIZE, Visitor, build_stack, visiting

CACHE_MEMORY = 2 * 1024 * 1024
# Four times the cache instance's whole maxmemory in stored bodies.
FLOOD_PAGES = 4 * CACHE_MEMORY // PAGE_SIZE


@pytest.fixture
def small_lru_server() -> Iterator[EmbeddedValkey]:
    server = EmbeddedValkey(maxmemory=str(CACHE_MEMORY), maxmemory_policy="allkeys-lru").start()
    try:
        yield server
    finally:
        server.cleanup()


def settings(url: str) -> ValkeySettings:
    return ValkeySettings(url=url, command_timeout=1.0)


def evicted_keys(server: EmbeddedValkey) -> int:
    client = redis.Redis.from_url(server.url)
    try:
        return int(client.info("stats")["evicted_keys"])
    finally:
        client.close()


def remaining(response: httpx.Response) -> int:
    match = re.search(r";r=(\d+)", response.headers["ratelimit"])
    assert match is not None, response.headers["ratelimit"]
    return int(match[1])


async def flood(visitor: Visitor) -> None:
    for number in range(FLOOD_PAGES):
        response = await visitor.get(f"/page/{number}", with_cookie=False)
        assert response.status_code == 200


@pytest.fixture
async def separate_instances(
    small_lru_server: EmbeddedValkey, private_server: EmbeddedValkey
) -> AsyncIterator[Visitor]:
    """The documented deployment: cache on the small LRU instance, state on its own."""
    cache_valkey = Valkey(settings(small_lru_server.url))
    state_valkey = Valkey(settings(private_server.url))
    try:
        async with visiting(build_stack(cache_valkey, state_valkey)) as visitor:
            yield visitor
    finally:
        await cache_valkey.aclose()
        await state_valkey.aclose()


@pytest.fixture
async def shared_instance(small_lru_server: EmbeddedValkey) -> AsyncIterator[Visitor]:
    """Against the advice: everything on the one small LRU instance."""
    valkey = Valkey(settings(small_lru_server.url))
    try:
        async with visiting(build_stack(valkey)) as visitor:
            yield visitor
    finally:
        await valkey.aclose()


async def test_flood_on_separate_cache_instance_keeps_sessions(
    small_lru_server: EmbeddedValkey, separate_instances: Visitor
) -> None:
    visitor = separate_instances
    assert (await visitor.post("/cart/apple")).status_code == 200
    await flood(visitor)
    assert evicted_keys(small_lru_server) > 0  # the flood did fill the cache instance
    response = await visitor.get("/basket")
    assert response.json() == {"items": ["apple"], "new": False}


async def test_flood_on_separate_cache_instance_keeps_limiter_state(
    small_lru_server: EmbeddedValkey, separate_instances: Visitor
) -> None:
    visitor = separate_instances
    before = remaining(await visitor.get("/export"))
    await flood(visitor)
    assert evicted_keys(small_lru_server) > 0
    assert remaining(await visitor.get("/export")) == before - 1


async def test_flood_on_one_shared_lru_instance_evicts_a_session(
    small_lru_server: EmbeddedValkey, shared_instance: Visitor
) -> None:
    """The failure mode the deployment advice exists for: the visitor is logged out."""
    visitor = shared_instance
    assert (await visitor.post("/cart/apple")).status_code == 200
    assert (await visitor.get("/members")).status_code == 200
    await flood(visitor)
    assert evicted_keys(small_lru_server) > 0
    assert (await visitor.get("/members")).status_code == 401
