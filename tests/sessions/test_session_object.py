"""The Session mapping: typed access, change tracking rules and size caps."""

from __future__ import annotations

import msgspec
import pytest
import redis

from cachemw.sessions import Session, SessionConfig, SessionNotLoaded, SessionStore
from cachemw.sessions.session import SessionContext
from cachemw.valkey import Valkey
from tests.sessions.apps import fastapi_app
from tests.sessions.conftest import Browser
from tests.support.servers import all_keys


class Item(msgspec.Struct, frozen=True):
    sku: str
    qty: int


async def _fresh(store: SessionStore) -> Session:
    return await Session(SessionContext(store), []).load()


def test_session_used_before_load_raises_not_loaded(store: SessionStore) -> None:
    session = Session(SessionContext(store), [])
    with pytest.raises(SessionNotLoaded):
        session["x"] = 1


async def test_typed_get_validates_with_msgspec(store: SessionStore) -> None:
    session = await _fresh(store)
    session["item"] = Item("a", 2)
    assert session.get("item", type=Item) == Item("a", 2)
    assert session.get("item") == Item("a", 2)
    assert session.get("missing", type=Item) is None


async def test_typed_get_with_wrong_type_raises_data_error(store: SessionStore) -> None:
    from cachemw.sessions import SessionDataError  # noqa: PLC0415

    session = await _fresh(store)
    session["n"] = "text"
    with pytest.raises(SessionDataError):
        session.get("n", type=int)


async def test_reserved_and_empty_field_names_are_refused(store: SessionStore) -> None:
    session = await _fresh(store)
    for name in ["", "@g", "x" * 300]:
        with pytest.raises(KeyError):
            session[name] = 1


async def test_value_over_cap_is_refused_before_anything_is_written(valkey: Valkey) -> None:
    store = SessionStore(valkey, SessionConfig(max_value_bytes=16, max_session_bytes=64))
    session = await _fresh(store)
    from cachemw.sessions import SessionTooLarge  # noqa: PLC0415

    with pytest.raises(SessionTooLarge, match="max_value_bytes"):
        session["big"] = "x" * 20
    for name in "abcd":
        session[name] = "x" * 12  # 1 + 13 bytes each: 56 of 64
    with pytest.raises(SessionTooLarge, match="max_session_bytes"):
        session["e"] = "x" * 12


async def test_value_over_cap_in_handler_answers_413_and_writes_nothing(
    valkey: Valkey, valkey_sync: redis.Redis
) -> None:
    store = SessionStore(valkey, SessionConfig(max_value_bytes=16))
    browser = Browser(fastapi_app(store))
    try:
        response = await browser.post(f"/set/big/{'x' * 40}")
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert all_keys(valkey_sync) == []
    finally:
        await browser.aclose()


async def test_in_place_mutation_after_assignment_is_not_saved(
    framework: str, browser: Browser
) -> None:
    if framework != "fastapi":
        return
    await browser.post("/assign-then-mutate")
    assert (await browser.get("/read")).json()["cart"] == ["a"]


async def test_deleting_a_field_removes_it_from_valkey(
    browser: Browser, valkey_sync: redis.Redis
) -> None:
    await browser.post("/set/a/1")
    await browser.post("/set/b/2")
    await browser.post("/delete/a")
    (key,) = all_keys(valkey_sync)
    assert sorted(n for n in valkey_sync.hkeys(key) if not n.startswith(b"@")) == [b"b"]


async def test_changes_after_response_start_are_refused(store: SessionStore) -> None:
    from cachemw.sessions.commit import commit_session  # noqa: PLC0415

    session = await _fresh(store)
    session["a"] = 1
    await commit_session(session)
    with pytest.raises(SessionNotLoaded, match="response has started"):
        session["b"] = 2


async def test_concurrent_loads_of_one_request_read_valkey_once(
    browser: Browser, store: SessionStore, valkey_sync: redis.Redis
) -> None:
    import asyncio  # noqa: PLC0415

    from tests.sessions.test_expiry import reset_stats  # noqa: PLC0415
    from tests.sessions.test_round_trips import client_calls  # noqa: PLC0415

    await browser.post("/cart/apple")
    await browser.get("/read")
    reset_stats(valkey_sync)
    headers = [(b"cookie", f"{browser.cookie_name}={browser.sid}".encode())]
    session = Session(SessionContext(store), headers)
    first, second = await asyncio.gather(session.load(), session.load())
    assert first is second is session
    assert session["cart"] == ["apple"]
    assert client_calls(valkey_sync) == {"evalsha": 1}
