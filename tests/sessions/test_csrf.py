"""Synchronizer CSRF token bound to the session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI

from cachemw.sessions import Session, SessionMiddleware, SessionStore
from cachemw.sessions.csrf import CSRF_HEADER, csrf_token
from cachemw.sessions.fastapi import SessionDep, require_csrf
from tests.sessions.conftest import Browser


def csrf_app(store: SessionStore) -> FastAPI:
    app = FastAPI()

    @app.get("/form")
    async def form(session: SessionDep) -> dict[str, str]:
        return {"token": csrf_token(session)}

    @app.post("/transfer")
    async def transfer(session: Annotated[Session, Depends(require_csrf)]) -> dict[str, bool]:
        return {"ok": True}

    @app.get("/transfer")
    async def transfer_status(
        session: Annotated[Session, Depends(require_csrf)],
    ) -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(SessionMiddleware, store=store)
    return app


@pytest.fixture
async def make_browser(store: SessionStore) -> AsyncIterator[Callable[[], Browser]]:
    made: list[Browser] = []
    app = csrf_app(store)

    def new() -> Browser:
        made.append(Browser(app))
        return made[-1]

    yield new
    for browser in made:
        await browser.aclose()


async def _post(browser: Browser, token: str | None) -> int:
    headers = {} if token is None else {CSRF_HEADER: token}
    browser.http.cookies.clear()
    assert browser.sid is not None
    headers["cookie"] = f"{browser.cookie_name}={browser.sid}"
    return (await browser.http.post("/transfer", headers=headers)).status_code


async def test_unsafe_request_with_session_token_passes(
    make_browser: Callable[[], Browser],
) -> None:
    browser = make_browser()
    token = (await browser.get("/form")).json()["token"]
    assert await _post(browser, token) == 200


async def test_unsafe_request_without_token_is_forbidden(
    make_browser: Callable[[], Browser],
) -> None:
    browser = make_browser()
    await browser.get("/form")
    assert await _post(browser, None) == 403


async def test_token_of_another_session_is_forbidden(make_browser: Callable[[], Browser]) -> None:
    victim, attacker = make_browser(), make_browser()
    await victim.get("/form")
    attacker_token = (await attacker.get("/form")).json()["token"]
    assert await _post(victim, attacker_token) == 403


async def test_safe_method_needs_no_token(make_browser: Callable[[], Browser]) -> None:
    browser = make_browser()
    assert (await browser.get("/transfer")).status_code == 200


async def test_token_is_stable_within_a_session(make_browser: Callable[[], Browser]) -> None:
    browser = make_browser()
    first = (await browser.get("/form")).json()["token"]
    assert (await browser.get("/form")).json()["token"] == first
