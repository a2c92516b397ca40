"""Requests through the full stack leave no reference cycles behind.

A cycle per request (say the scope holding a middleware's state object, which holds the
scope) keeps every request's objects alive until the garbage collector runs, makes the
collector run far more often, and shows up as throughput lost and p99 pauses under load.
Reference counting alone must free everything a finished request built.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from cachemw.valkey import Valkey
from tests.hardening.stack import COOKIE, build_stack

REQUESTS_PER_ROUTE = 50
ROUTES = [
    ("GET", "/catalogue/teapot", False),  # cached: one miss, then hits
    ("GET", "/public", False),  # not cached, no session, not limited
    ("GET", "/basket", True),  # session read
    ("POST", "/cart/apple", True),  # session write
    ("GET", "/search", False),  # rate limited, allowed
    ("GET", "/catalogue/teapot?x=1", False),  # with a query: another key
]


@pytest.fixture
def collector_paused() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def asgi_request(app: object, method: str, path: str, cookie: str | None) -> list[dict]:
    """One request straight through ASGI (httpx would add cycles of its own)."""
    raw_path, _, query = path.partition("?")
    headers = [(b"host", b"shop.example"), (b"user-agent", b"cycle-check")]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("198.51.100.7", 40000),
        "server": ("shop.example", 80),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    return sent


def session_cookie(messages: list[dict]) -> str | None:
    for name, value in messages[0].get("headers", ()):
        if name == b"set-cookie" and value.startswith(COOKIE.encode() + b"="):
            return value.split(b";", 1)[0].decode()
    return None


@pytest.mark.parametrize(("method", "path", "with_cookie"), ROUTES)
async def test_finished_requests_leave_no_reference_cycles(
    valkey: Valkey, collector_paused: None, method: str, path: str, with_cookie: bool
) -> None:
    stack = build_stack(valkey)
    cookie = session_cookie(await asgi_request(stack.app, "POST", "/cart/pear", None))
    assert cookie is not None
    for _ in range(3):  # warm-up: connections, scripts, the stored entry
        await asgi_request(stack.app, method, path, cookie if with_cookie else None)
    gc.collect()
    for _ in range(REQUESTS_PER_ROUTE):
        messages = await asgi_request(stack.app, method, path, cookie if with_cookie else None)
        assert messages[0]["status"] == 200
    unreachable = gc.collect()
    assert unreachable == 0, f"{unreachable / REQUESTS_PER_ROUTE:.1f} objects in cycles/request"
