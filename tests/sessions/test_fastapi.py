"""The FastAPI helpers: login-required and session-required answer 401."""

from __future__ import annotations

import pytest

from tests.sessions.conftest import Browser


@pytest.fixture
def framework() -> str:
    return "fastapi"


async def test_require_session_answers_401_without_session(browser: Browser) -> None:
    response = await browser.get("/members")
    assert response.status_code == 401
    assert response.headers["www-authenticate"]


async def test_require_session_passes_with_session(browser: Browser) -> None:
    await browser.post("/cart/apple")
    assert (await browser.get("/members")).status_code == 200


async def test_require_login_answers_401_for_anonymous_session(browser: Browser) -> None:
    await browser.post("/cart/apple")
    assert (await browser.get("/me")).status_code == 401


async def test_require_login_passes_after_login(browser: Browser) -> None:
    await browser.post("/login/alice")
    assert (await browser.get("/me")).json() == {"user": "alice"}


async def test_require_login_answers_401_after_logout(browser: Browser) -> None:
    await browser.post("/login/alice")
    await browser.post("/logout")
    assert (await browser.get("/me")).status_code == 401


async def test_typed_session_value_dependency(browser: Browser) -> None:
    assert (await browser.get("/profile")).json() == {"name": None}
    await browser.post("/profile")
    assert (await browser.get("/profile")).json() == {"name": "Ada"}
