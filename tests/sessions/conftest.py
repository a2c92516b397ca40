"""Fixtures for the sessions tests: a store on the real server and browser-like clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from cachemw.sessions import SessionConfig, SessionCookie, SessionStore
from cachemw.valkey import Valkey
from tests.sessions.apps import BUILDERS, Gate

COOKIE = SessionCookie().name


class Browser:
    """One user agent: remembers the session cookie the way a browser would, and lets a test
    send any cookie header it likes (forged, duplicated, malformed)."""

    def __init__(self, app: Any, cookie_name: str = COOKIE) -> None:
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://testserver"
        )
        self.cookie_name = cookie_name
        self.sid: str | None = None

    async def request(
        self, method: str, path: str, *, cookie_header: str | None = None
    ) -> httpx.Response:
        self.http.cookies.clear()  # we manage the cookie ourselves, exactly
        headers: dict[str, bytes] = {}
        if cookie_header is not None:
            headers["cookie"] = cookie_header.encode("utf-8", "surrogateescape")
        elif self.sid is not None:
            headers["cookie"] = f"{self.cookie_name}={self.sid}".encode()
        response = await self.http.request(method, path, headers=headers)
        for line in response.headers.get_list("set-cookie"):
            name, _, rest = line.partition("=")
            if name == self.cookie_name:
                value = rest.split(";", 1)[0]
                self.sid = value or None
        return response

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, **kw)

    async def aclose(self) -> None:
        await self.http.aclose()


def session_cookies(response: httpx.Response, name: str = COOKIE) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith(name + "=")]


@pytest.fixture
def config() -> SessionConfig:
    return SessionConfig(idle_timeout=60, absolute_lifetime=120)


@pytest.fixture
def store(valkey: Valkey, config: SessionConfig) -> SessionStore:
    return SessionStore(valkey, config)


@pytest.fixture(params=["fastapi", "starlette"])
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def app(store: SessionStore, framework: str, gate: Gate) -> Any:
    return BUILDERS[framework](store, gate)


@pytest.fixture
async def browsers(app: Any) -> AsyncIterator[Callable[[], Browser]]:
    made: list[Browser] = []

    def new() -> Browser:
        browser = Browser(app)
        made.append(browser)
        return browser

    yield new
    for browser in made:
        await browser.aclose()


@pytest.fixture
async def browser(browsers: Callable[[], Browser]) -> Browser:
    return browsers()
