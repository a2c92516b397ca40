"""Apps and clients for the rate-limit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from cachemw.ratelimit import RateLimitMiddleware
from cachemw.valkey import Valkey
from tests.conftest import make_settings


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"a", b"b", b"c"):
            yield part

    return StreamingResponse(chunks())


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/login", ok, methods=["GET", "POST"]),
            Route("/users/{id}", ok),
            Route("/items/{id:int}", ok),
            Route("/api/a", ok),
            Route("/api/b", ok),
            Route("/open", ok),
            Route("/closed", ok),
            Route("/stream", stream),
            Route("/free", ok),
        ]
    )


def limited_app(valkey: Valkey, **options: Any) -> RateLimitMiddleware:
    return RateLimitMiddleware(starlette_app(), valkey=valkey, **options)


def client_for(app: Any, ip: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def started_valkey(url: str) -> Valkey:
    """A client as an app has it after its lifespan start-up (``valkey.lifespan`` pings).

    The start-up ping matters on Cluster: a fresh cluster client whose first commands run
    concurrently (topology discovery racing connection set-up in redis-py 8.1's asyncio
    RedisCluster) fails some of them with "pool closed" or an AttributeError.
    """
    client = Valkey(make_settings(url))
    await client.ping()
    return client


@pytest.fixture
async def valkey(valkey_url: str) -> AsyncIterator[Valkey]:
    client = await started_valkey(valkey_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def second_valkey(valkey_url: str) -> AsyncIterator[Valkey]:
    """Another app process's client on the same server."""
    client = await started_valkey(valkey_url)
    try:
        yield client
    finally:
        await client.aclose()


async def call(
    app: Any,
    method: str,
    path: str,
    *,
    peer: str = "203.0.113.7",
    raw_path: bytes | None = None,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    root_path: str = "",
) -> int:
    """One request straight through the ASGI interface, as a server would make it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode(),
        "query_string": query,
        "root_path": root_path,
        "headers": headers or [(b"host", b"test")],
        "client": (peer, 40000),
        "server": ("test", 80),
    }
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]
