"""Store trouble fails closed on session routes only; corrupt data is never trusted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
import redis

from cachemw.sessions import SessionConfig, SessionStore
from cachemw.sessions.ids import session_ref
from cachemw.valkey import Valkey
from cachemw.valkey.embedded import EmbeddedValkey
from tests.conftest import make_settings
from tests.sessions.apps import BUILDERS, Gate
from tests.sessions.conftest import Browser, session_cookies
from tests.support.servers import all_keys


@pytest.fixture
async def private_valkey(private_server: EmbeddedValkey) -> AsyncIterator[Valkey]:
    client = Valkey(make_settings(private_server.url, command_timeout=0.3))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def private_browser(
    private_valkey: Valkey, framework: str, gate: Gate
) -> AsyncIterator[Browser]:
    store = SessionStore(private_valkey, SessionConfig(retry_after=3))
    browser = Browser(BUILDERS[framework](store, gate))
    try:
        yield browser
    finally:
        await browser.aclose()


async def test_valkey_down_gives_503_on_session_route(
    private_server: EmbeddedValkey, private_browser: Browser
) -> None:
    await private_browser.post("/cart/apple")
    private_server.stop()
    response = await private_browser.get("/read")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "3"
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["status"] == 503
    assert session_cookies(response) == []


async def test_valkey_down_leaves_public_route_unaffected(
    private_server: EmbeddedValkey, private_browser: Browser
) -> None:
    await private_browser.post("/cart/apple")
    private_server.stop()
    response = await private_browser.get("/public")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


async def test_anonymous_session_route_also_fails_closed_without_store(
    private_server: EmbeddedValkey, private_browser: Browser
) -> None:
    private_server.stop()
    response = await private_browser.post("/cart/apple")
    assert response.status_code == 503
    assert session_cookies(response) == []


async def test_store_failure_at_commit_replaces_response_with_503(
    private_server: EmbeddedValkey, private_browser: Browser, gate: Gate
) -> None:
    await private_browser.post("/cart/apple")
    request = asyncio.create_task(private_browser.post("/slow-cart/pear"))
    await asyncio.wait_for(gate.loaded.wait(), 5)
    private_server.stop()
    gate.release.set()
    response = await request
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"


async def test_sessions_work_again_after_valkey_returns(
    private_server: EmbeddedValkey, private_browser: Browser
) -> None:
    private_server.stop()
    assert (await private_browser.post("/cart/apple")).status_code == 503
    private_server.start()
    for _ in range(50):  # the breaker lets a probe through after its reset timeout
        response = await private_browser.post("/cart/apple")
        if response.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert response.status_code == 200


def _corrupt(valkey_sync: redis.Redis, store: SessionStore, sid: str) -> bytes:
    key = session_ref(sid).key(store.keyspace).encode()
    valkey_sync.hset(key, "cart", b"\xc1")  # 0xc1 is never valid msgpack
    return key


async def test_request_without_cookie_reads_empty_session_without_store(
    private_server: EmbeddedValkey, private_browser: Browser
) -> None:
    # No cookie means no session: nothing to ask Valkey, so reading needs no store.
    private_server.stop()
    response = await private_browser.get("/read")
    assert response.status_code == 200
    assert response.json()["new"] is True


async def test_corrupt_field_makes_request_anonymous_and_deletes_hash(
    browser: Browser, store: SessionStore, valkey_sync: redis.Redis
) -> None:
    await browser.post("/cart/apple")
    assert browser.sid is not None
    key = _corrupt(valkey_sync, store, browser.sid)
    response = await browser.get("/read")
    assert response.status_code == 200
    assert response.json()["new"] is True
    assert session_cookies(response)[0].split(";")[0].endswith("=")  # cleared
    assert valkey_sync.exists(key) == 0


async def test_corrupt_session_is_replaced_by_a_new_id_on_write(
    browser: Browser, store: SessionStore, valkey_sync: redis.Redis
) -> None:
    await browser.post("/cart/apple")
    old = browser.sid
    assert old is not None
    key = _corrupt(valkey_sync, store, old)
    await browser.post("/cart/pear")
    assert browser.sid not in (None, old)
    assert valkey_sync.exists(key) == 0
    assert (await browser.get("/read")).json()["cart"] == ["pear"]


async def test_corrupt_sessions_are_logged_once(
    browsers: Callable[[], Browser],
    store: SessionStore,
    valkey_sync: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    victims = [browsers() for _ in range(3)]
    for victim in victims:
        await victim.post("/cart/apple")
        assert victim.sid is not None
        _corrupt(valkey_sync, store, victim.sid)
    with caplog.at_level(logging.WARNING, logger="cachemw.sessions"):
        for victim in victims:
            await victim.get("/read")
    assert len([r for r in caplog.records if "did not decode" in r.getMessage()]) == 1
    for victim in victims:
        assert victim.sid is None
    assert all_keys(valkey_sync) == []


async def test_key_of_wrong_type_is_treated_as_corrupt(
    browser: Browser, store: SessionStore, valkey_sync: redis.Redis
) -> None:
    await browser.post("/cart/apple")
    assert browser.sid is not None
    key = session_ref(browser.sid).key(store.keyspace)
    valkey_sync.delete(key)
    valkey_sync.set(key, b"not a hash")
    assert (await browser.get("/read")).json()["new"] is True
