"""Hostile requests through the middleware: never a 5xx, never an entry a clean request sees."""

from __future__ import annotations

import random
from typing import Any

from cachemw.cache import DEFAULT_FORWARDING_HEADERS, CacheMiddleware
from cachemw.valkey import Valkey
from tests.cache.conftest import Origin

NAMES = [
    b"cache-control", b"pragma", b"if-none-match", b"if-modified-since", b"if-match",
    b"if-unmodified-since", b"range", b"vary", b"cookie", b"authorization", b"host",
    b"x-forwarded-host", b"content-length", b"accept", b"X-Upper", b"", b"\x00", b"{tag}",
]  # fmt: skip
VALUES = [
    b"", b"*", b'W/"x"', b'"unterminated', b"max-age=-1", b"max-age=99999999999999999999",
    b"no-cache, no-store, only-if-cached", b"max-stale", b"min-fresh=abc", b"bytes=0-",
    b"Sun, 06 Nov 1994 08:49:37 GMT", b"\xff\xfe", b"a" * 4096, b"\r\n", b"0", b"-5",
    b"evil.example", b"shop.test", b"sid=1; _ga=2", b"{}\x00\n",
]  # fmt: skip
PATHS = [b"/", b"/%2e%2e/", b"/a%zz", b"/" + b"x" * 20000, b"/\xff", b"//double", b"/q?x"]


def hostile_scope(rng: random.Random) -> dict[str, Any]:
    headers = [(rng.choice(NAMES), rng.choice(VALUES)) for _ in range(rng.randint(0, 40))]
    path = rng.choice(PATHS)
    return {
        "type": "http",
        "method": rng.choice(["GET", "GET", "HEAD", "POST", "get"]),
        "scheme": rng.choice(["http", "https", "weird"]),
        "path": path.decode("latin-1"),
        "raw_path": path,
        "query_string": rng.choice([b"", b"a=1&a=2", b"%%%", b"x" * 3000]),
        "root_path": "",
        "headers": headers,
    }


async def call(app: Any, scope: dict[str, Any], body: bytes = b"") -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, content


async def test_hostile_requests_never_get_a_5xx_nor_poison_clean_requests(valkey: Valkey) -> None:
    origin = Origin()
    # The origin builds its page from the host and forwarding headers: the classic
    # poisoning vector. Only a cache that keys or bypasses them keeps clean pages clean.
    reflected = {b"host", *(name.encode() for name in DEFAULT_FORWARDING_HEADERS)}
    origin.reply(
        "/",
        body=lambda scope: b"|".join(v for k, v in scope["headers"] if k in reflected)[:500],
    )
    cache = CacheMiddleware(origin, valkey=valkey)
    rng = random.Random(9111)
    try:
        for _ in range(150):
            status, _ = await call(cache, hostile_scope(rng), body=rng.choice([b"", b"smuggle"]))
            assert status < 500
        clean = {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"shop.test")],
        }
        status, content = await call(cache, clean)
    finally:
        await cache.aclose()
    assert status == 200
    assert content == b"shop.test"
