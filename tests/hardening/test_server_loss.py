"""Every feature at once across a restart that loses all data, and on a full server.

* Restart with data loss (``kill`` + ``start`` of a private server): nothing cachemw keeps in
  process (fill locks, Vary memos, breaker) blocks a key afterwards, and a session that died
  with the server makes its owner anonymous, never a 5xx.
* ``OOM command not allowed`` under ``noeviction``: the cache serves from the app (the store
  is refused), a session write answers 503, the limits keep counting (see below); no 500.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis

from cachemw.valkey import Valkey, ValkeySettings
from cachemw.valkey.embedded import EmbeddedValkey
from tests.hardening.stack import Visitor, build_stack, visiting

BUDGET = 0.3
RECOVERY_TIMEOUT = 5.0


def state_settings(url: str) -> ValkeySettings:
    return ValkeySettings(
        url=url,
        command_timeout=BUDGET,
        connect_timeout=BUDGET,
        breaker_reset_timeout=0.2,
    )


@pytest.fixture
async def visitor_on(private_server: EmbeddedValkey) -> AsyncIterator[Visitor]:
    valkey = Valkey(state_settings(private_server.url))
    try:
        async with visiting(build_stack(valkey)) as visitor:
            yield visitor
    finally:
        await valkey.aclose()


def restart_losing_everything(server: EmbeddedValkey) -> None:
    server.kill()  # SIGKILL: no shutdown save; the embedded server persists nothing anyway
    server.start()


async def first_answer_after_restart(visitor: Visitor, method: str, path: str) -> httpx.Response:
    """Requests until one is not the outage's 503 (the breaker may still be open)."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        response = await visitor.request(method, path)
        assert response.status_code < 500 or response.status_code == 503, response.text
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.05)


async def test_restart_with_data_loss_leaves_no_lock_blocking_a_cached_key(
    private_server: EmbeddedValkey, visitor_on: Visitor
) -> None:
    for _ in range(2):
        await visitor_on.get("/catalogue/teapot", with_cookie=False)
    restart_losing_everything(private_server)
    statuses: list[str] = []
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline and not (statuses and "hit" in statuses[-1]):
        response = await visitor_on.get("/catalogue/teapot", with_cookie=False)
        assert response.status_code == 200
        assert response.json()["item"] == "teapot"
        statuses.append(response.headers["cache-status"])
        await asyncio.sleep(0.02)
    assert statuses[-1].startswith("cachemw; hit"), statuses
    assert any("stored" in status for status in statuses), statuses


async def test_restart_with_data_loss_makes_session_owner_anonymous_on_required_route(
    private_server: EmbeddedValkey, visitor_on: Visitor
) -> None:
    assert (await visitor_on.post("/cart/apple")).status_code == 200
    assert (await visitor_on.get("/members")).status_code == 200
    restart_losing_everything(private_server)
    response = await first_answer_after_restart(visitor_on, "GET", "/members")
    assert response.status_code == 401


async def test_restart_with_data_loss_gives_session_owner_a_new_empty_session(
    private_server: EmbeddedValkey, visitor_on: Visitor
) -> None:
    assert (await visitor_on.post("/cart/apple")).status_code == 200
    restart_losing_everything(private_server)
    response = await first_answer_after_restart(visitor_on, "GET", "/basket")
    assert response.status_code == 200
    assert response.json() == {"items": [], "new": True}


# -- a full server under noeviction --------------------------------------------------------


@pytest.fixture
def full_server() -> Iterator[EmbeddedValkey]:
    """A server with ``maxmemory 2mb`` under ``noeviction``, filled until writes fail."""
    server = EmbeddedValkey(maxmemory="2mb", maxmemory_policy="noeviction").start()
    try:
        yield server
    finally:
        server.cleanup()


def fill_up(server: EmbeddedValkey) -> None:
    """Write ballast until Valkey refuses it, then settle the server past ``maxmemory``.

    Right after a refused write the server sits just *under* the limit again (the refused
    command's query buffer is freed), so the next small write would still pass; lowering
    ``maxmemory`` below what is used gives the steady "full" state every write then meets.
    """
    client = redis.Redis.from_url(server.url)
    try:
        refused = False
        for index in range(1_000):
            try:
                client.set(f"ballast:{index}", b"x" * 16_384)
            except redis.exceptions.OutOfMemoryError:
                refused = True
                break
        assert refused, "maxmemory was never reached"
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used - 64 * 1024)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("probe", b"x")
    finally:
        client.close()


@pytest.fixture
async def full_visitor(full_server: EmbeddedValkey) -> AsyncIterator[Visitor]:
    valkey = Valkey(state_settings(full_server.url))
    try:
        async with visiting(build_stack(valkey)) as visitor:
            # A session created while there was room, then the server fills up.
            assert (await visitor.post("/cart/apple")).status_code == 200
            fill_up(full_server)
            yield visitor
    finally:
        await valkey.aclose()


async def test_oom_under_noeviction_cached_route_serves_200_without_storing(
    full_visitor: Visitor,
) -> None:
    for _ in range(3):
        response = await full_visitor.get("/catalogue/teapot", with_cookie=False)
        assert response.status_code == 200
        assert response.json()["item"] == "teapot"
        assert "hit" not in response.headers.get("cache-status", "")


async def test_oom_under_noeviction_session_write_answers_503(full_visitor: Visitor) -> None:
    response = await full_visitor.post("/cart/pear")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "retry-after" in response.headers


async def test_oom_under_noeviction_session_read_is_never_a_500(full_visitor: Visitor) -> None:
    response = await full_visitor.get("/basket")
    # Loading slides the idle expiry (a write): served, or refused as unavailable.
    assert response.status_code in (200, 503)
    if response.status_code == 200:
        assert response.json()["items"] == ["apple"]


def remaining(response: httpx.Response) -> int:
    """``r`` of the RateLimit field (draft-ietf-httpapi-ratelimit-headers)."""
    match = re.search(r";r=(\d+)", response.headers["ratelimit"])
    assert match is not None, response.headers["ratelimit"]
    return int(match[1])


@pytest.mark.parametrize("path", ["/search", "/export"], ids=["fail-open", "fail-closed"])
async def test_oom_under_noeviction_limits_keep_counting(full_visitor: Visitor, path: str) -> None:
    # Valkey lets a flagless script that has already written (the sliding log's
    # ZREMRANGEBYSCORE frees memory) run its later ZADD past maxmemory, so the limiter is
    # not "unavailable" here: it keeps counting exactly, on either policy.
    first = await full_visitor.get(path)
    second = await full_visitor.get(path)
    assert [first.status_code, second.status_code] == [200, 200]
    assert remaining(second) == remaining(first) - 1


async def test_oom_under_noeviction_public_route_serves_200(full_visitor: Visitor) -> None:
    assert (await full_visitor.get("/public")).status_code == 200
