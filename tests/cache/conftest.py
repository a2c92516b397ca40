"""Fixtures for the response cache: a scriptable origin app behind CacheMiddleware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from cachemw.cache import CacheMiddleware, CacheSettings
from cachemw.metrics import Metrics
from cachemw.valkey import Valkey

Headers = list[tuple[str, str]]


@dataclass
class Reply:
    """What the origin answers for a path; ``headers`` may be a function of the request."""

    status: int = 200
    headers: Headers | Callable[[dict[str, Any]], Headers] = field(
        default_factory=lambda: [("cache-control", "max-age=60")]
    )
    body: bytes | Callable[[dict[str, Any]], bytes] = b"hello"
    delay: float = 0.0
    chunks: int = 1
    raises: bool = False
    # Answer If-None-Match with 304 when it matches this reply's ETag.
    conditional: bool = False


class Origin:
    """An ASGI app that counts calls per path and replies as configured."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.calls: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []

    def reply(self, path: str, **kwargs: Any) -> Reply:
        self.replies[path] = Reply(**kwargs)
        return self.replies[path]

    def count(self, path: str) -> int:
        return self.calls.get(path, 0)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        path = scope["path"]
        self.calls[path] = self.calls.get(path, 0) + 1
        self.requests.append(scope)
        reply = self.replies.get(path, Reply())
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.raises:
            raise RuntimeError("origin failure")
        body = reply.body(scope) if callable(reply.body) else reply.body
        headers = reply.headers(scope) if callable(reply.headers) else reply.headers
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if reply.conditional and _not_modified(scope, raw):
            kept = [(k, v) for k, v in raw if k in (b"etag", b"cache-control", b"date")]
            await send({"type": "http.response.start", "status": 304, "headers": kept})
            await send({"type": "http.response.body", "body": b""})
            return
        if reply.chunks == 1 and not any(k == b"content-length" for k, _ in raw):
            raw.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": reply.status, "headers": raw})
        if scope["method"] == "HEAD":
            body = b""
        if reply.chunks <= 1:
            await send({"type": "http.response.body", "body": body})
            return
        size = max(1, len(body) // reply.chunks)
        for start in range(0, len(body), size):
            await send(
                {
                    "type": "http.response.body",
                    "body": body[start : start + size],
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b""})


def _not_modified(scope: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> bool:
    etag = next((v for k, v in headers if k == b"etag"), None)
    sent = [v for k, v in scope["headers"] if k == b"if-none-match"]
    return etag is not None and any(etag in value for value in sent)


class Clock:
    """A settable clock for freshness tests (epoch seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class CacheHarness:
    origin: Origin
    cache: CacheMiddleware
    client: httpx.AsyncClient
    metrics: Metrics
    clock: Clock


def make_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache_settings() -> CacheSettings:
    return CacheSettings()


@asynccontextmanager
async def build_harness(
    valkey: Valkey, settings: CacheSettings | None = None, clock: Clock | None = None
) -> AsyncIterator[CacheHarness]:
    origin = Origin()
    metrics = Metrics()
    clock = clock or Clock()
    cache = CacheMiddleware(origin, valkey=valkey, settings=settings, metrics=metrics, clock=clock)
    try:
        async with make_client(cache) as client:
            yield CacheHarness(origin, cache, client, metrics, clock)
    finally:
        await cache.aclose()


@pytest.fixture
async def h(
    valkey: Valkey, clock: Clock, cache_settings: CacheSettings
) -> AsyncIterator[CacheHarness]:
    async with build_harness(valkey, cache_settings, clock) as harness:
        yield harness


def commands_processed(client: Any) -> int:
    """Commands the server(s) executed, not counting INFO itself."""
    stats = client.info("commandstats")
    nodes = [stats] if any(k.startswith("cmdstat_") for k in stats) else list(stats.values())
    return sum(
        int(value["calls"])
        for node in nodes
        for name, value in node.items()
        if name.startswith("cmdstat_") and name not in ("cmdstat_info", "cmdstat_cluster")
    )
