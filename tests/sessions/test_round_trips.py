"""Valkey commands per request are what the design promises (issue 8): 0 / 1 / 2."""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import RedisCluster
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cachemw.sessions import SessionMiddleware, SessionStore, load_session
from tests.sessions.conftest import Browser, session_cookies
from tests.sessions.test_expiry import reset_stats


def client_calls(client: redis.Redis | RedisCluster) -> dict[str, int]:
    """Calls per command as the client sent them (commands run inside scripts excluded)."""
    infos: list[dict[str, Any]]
    if isinstance(client, RedisCluster):
        infos = list(client.info("commandstats", target_nodes=RedisCluster.PRIMARIES).values())
    else:
        infos = [client.info("commandstats")]
    calls: dict[str, int] = {}
    for info in infos:
        for name, stats in info.items():
            if name.startswith("cmdstat_") and isinstance(stats, dict):
                command = name.removeprefix("cmdstat_")
                calls[command] = calls.get(command, 0) + int(stats["calls"])
    # Commands a script runs are counted too; a script's own HGETALL etc. are not round trips.
    for inner in ("hgetall", "pexpiretime", "hget", "hmget", "time", "hstrlen", "hset"):
        calls.pop(inner, None)
    # Not per request: this test's own probes and a new pooled connection's handshake.
    for setup in ("info", "config|resetstat", "client|setname", "client|setinfo", "hello"):
        calls.pop(setup, None)
    return calls


async def test_untouched_request_sends_no_valkey_command(
    browser: Browser, valkey_sync: redis.Redis
) -> None:
    await browser.post("/cart/apple")
    reset_stats(valkey_sync)
    for _ in range(50):
        await browser.get("/public")  # carries the session cookie
    assert client_calls(valkey_sync) == {}


async def test_read_only_request_is_one_round_trip(
    browser: Browser, valkey_sync: redis.Redis
) -> None:
    await browser.post("/cart/apple")
    await browser.get("/read")  # warm: the script is cached on its node
    reset_stats(valkey_sync)
    for _ in range(50):
        await browser.get("/read")
    assert client_calls(valkey_sync) == {"evalsha": 50}


async def test_read_modify_request_is_two_round_trips(
    browser: Browser, valkey_sync: redis.Redis
) -> None:
    await browser.post("/cart/apple")
    await browser.post("/set/n/warm")
    reset_stats(valkey_sync)
    for i in range(20):
        await browser.post(f"/set/n/{i}")
    assert client_calls(valkey_sync) == {"evalsha": 40}


async def test_streaming_response_is_passed_through_after_commit(store: SessionStore) -> None:
    async def stream(request: Request) -> Response:
        session = await load_session(request)
        session["streamed"] = True

        async def body() -> Any:
            for i in range(3):
                yield f"chunk{i};".encode()

        return StreamingResponse(body())

    app = Starlette(routes=[Route("/stream", stream)])
    app.add_middleware(SessionMiddleware, store=store)
    browser = Browser(app)
    try:
        response = await browser.get("/stream")
        assert response.text == "chunk0;chunk1;chunk2;"
        assert session_cookies(response)
    finally:
        await browser.aclose()
