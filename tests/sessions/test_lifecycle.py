"""Login rotation, logout and "log out everywhere" (OWASP session lifecycle)."""

from __future__ import annotations

from collections.abc import Callable

import redis

from cachemw.sessions import SessionConfig, SessionCookie, SessionStore
from cachemw.sessions.ids import session_ref
from cachemw.valkey import Valkey
from tests.sessions.apps import fastapi_app
from tests.sessions.conftest import COOKIE, Browser, session_cookies
from tests.sessions.test_session_http import session_keys
from tests.support.servers import all_keys


async def test_rotate_on_login_changes_cookie_and_leaves_no_old_hash(
    browser: Browser, store: SessionStore, valkey_sync: redis.Redis
) -> None:
    await browser.post("/cart/apple")
    before = browser.sid
    assert before is not None
    old_key = session_ref(before).key(store.keyspace)
    response = await browser.post("/login/alice")
    assert response.headers["cache-control"] == "no-store"
    assert browser.sid is not None
    assert browser.sid != before
    assert valkey_sync.exists(old_key) == 0
    assert len(session_keys(valkey_sync)) == 1
    assert (await browser.get("/read")).json() == {"cart": ["apple"], "user": "alice", "new": False}


async def test_changes_made_with_rotation_are_kept_atomically(
    framework: str, browser: Browser, valkey_sync: redis.Redis
) -> None:
    if framework != "fastapi":
        return
    await browser.post("/cart/apple")
    await browser.post("/set/keep/1")
    await browser.post("/login-as/alice/Alice")
    (key,) = session_keys(valkey_sync)
    stored = valkey_sync.hgetall(key)
    assert {n for n in stored if not n.startswith(b"@")} == {b"keep", b"display"}
    assert stored[b"@u"] == b"alice"
    assert stored[b"@g"] == b"2"


async def test_old_id_is_anonymous_after_rotation(browsers: Callable[[], Browser]) -> None:
    user = browsers()
    await user.post("/cart/apple")
    old = user.sid
    await user.post("/login/alice")
    attacker = browsers()
    read = await attacker.get("/read", cookie_header=f"{COOKIE}={old}")
    assert read.json()["new"] is True


async def test_rotate_keeps_hash_in_same_cluster_slot(
    browser: Browser, store: SessionStore, valkey_sync: redis.Redis
) -> None:
    await browser.post("/cart/apple")
    before = browser.sid
    await browser.post("/login/alice")
    assert before is not None
    assert browser.sid is not None
    assert session_ref(before).tag == session_ref(browser.sid).tag
    assert session_ref(before).id_digest != session_ref(browser.sid).id_digest


async def test_login_without_prior_session_creates_bound_session(
    browser: Browser, store: SessionStore
) -> None:
    response = await browser.post("/login/bob")
    assert session_cookies(response)
    assert (await browser.get("/read")).json()["user"] == "bob"
    assert len(await store.list_user_sessions("bob")) == 1


async def test_logout_deletes_session_and_clears_cookie_with_same_attributes(
    browser: Browser, valkey_sync: redis.Redis
) -> None:
    await browser.post("/login/alice")
    response = await browser.post("/logout")
    (cookie,) = session_cookies(response)
    assert cookie == (
        f"{COOKIE}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; "
        "Path=/; Secure; HttpOnly; SameSite=Lax"
    )
    assert response.headers["cache-control"] == "no-store"
    assert browser.sid is None
    assert all_keys(valkey_sync) == []


async def test_logout_sends_clear_site_data_when_configured(valkey: Valkey) -> None:
    store = SessionStore(valkey, SessionConfig(clear_site_data=("cookies", "storage")))
    browser = Browser(fastapi_app(store))
    try:
        await browser.post("/cart/apple")
        response = await browser.post("/logout")
        assert response.headers["clear-site-data"] == '"cookies", "storage"'
    finally:
        await browser.aclose()


async def test_persistent_cookie_carries_absolute_lifetime_as_max_age(valkey: Valkey) -> None:
    config = SessionConfig(
        cookie=SessionCookie(persistent=True), idle_timeout=60, absolute_lifetime=3600
    )
    browser = Browser(fastapi_app(SessionStore(valkey, config)))
    try:
        (cookie,) = session_cookies(await browser.post("/cart/apple"))
        assert "; Max-Age=3600; " in cookie
    finally:
        await browser.aclose()


async def test_revoke_user_sessions_logs_out_every_device(
    browsers: Callable[[], Browser], store: SessionStore, valkey_sync: redis.Redis
) -> None:
    laptop, phone, other_user = browsers(), browsers(), browsers()
    await laptop.post("/login/alice")
    await phone.post("/cart/pear")
    await phone.post("/login/alice")
    await other_user.post("/login/bob")
    assert await store.revoke_user_sessions("alice") == 2
    assert (await laptop.get("/read")).json()["new"] is True
    assert (await phone.get("/read")).json()["new"] is True
    assert (await other_user.get("/read")).json()["user"] == "bob"
    assert await store.list_user_sessions("alice") == []
    assert valkey_sync.zcard(store.index_key("alice")) == 0


async def test_list_user_sessions_reports_live_sessions_only(
    browsers: Callable[[], Browser], store: SessionStore
) -> None:
    laptop, phone = browsers(), browsers()
    await laptop.post("/login/alice")
    await phone.post("/login/alice")
    sessions = await store.list_user_sessions("alice")
    assert len(sessions) == 2
    assert all(s.created_at <= s.expires_at <= s.absolute_expires_at for s in sessions)
    await phone.post("/logout")
    assert len(await store.list_user_sessions("alice")) == 1


async def test_logout_removes_session_from_user_index(
    browser: Browser, store: SessionStore, valkey_sync: redis.Redis
) -> None:
    await browser.post("/login/alice")
    await browser.post("/logout")
    assert valkey_sync.exists(store.index_key("alice")) == 0


async def test_rotation_of_bound_session_moves_its_index_entry(
    browser: Browser, store: SessionStore, valkey_sync: redis.Redis
) -> None:
    await browser.post("/login/alice")
    await browser.post("/rotate")
    assert valkey_sync.zcard(store.index_key("alice")) == 1
    (info,) = await store.list_user_sessions("alice")
    assert browser.sid is not None
    assert info.handle == session_ref(browser.sid).handle


async def test_switching_user_moves_session_between_indexes(
    browser: Browser, store: SessionStore, valkey_sync: redis.Redis
) -> None:
    await browser.post("/login/alice")
    await browser.post("/login/bob")
    assert valkey_sync.exists(store.index_key("alice")) == 0
    assert len(await store.list_user_sessions("bob")) == 1


async def test_revoke_session_by_handle_logs_out_that_device_only(
    browsers: Callable[[], Browser], store: SessionStore
) -> None:
    laptop, phone = browsers(), browsers()
    await laptop.post("/login/alice")
    await phone.post("/login/alice")
    assert phone.sid is not None
    handle = session_ref(phone.sid).handle
    assert not await store.revoke_session("bob", handle)
    assert await store.revoke_session("alice", handle)
    assert (await phone.get("/read")).json()["new"] is True
    assert (await laptop.get("/read")).json()["user"] == "alice"


async def test_index_entry_of_expired_session_is_pruned_by_listing(
    browser: Browser, store: SessionStore, valkey_sync: redis.Redis
) -> None:
    await browser.post("/login/alice")
    assert browser.sid is not None
    valkey_sync.delete(session_ref(browser.sid).key(store.keyspace))  # as if idle-expired
    index = store.index_key("alice")
    (member,) = valkey_sync.zrange(index, 0, -1)
    # Age the entry past the grace period that protects logins in flight.
    ref, _, _ = member.rpartition(b":")
    valkey_sync.zrem(index, member)
    valkey_sync.zadd(index, {ref + b":1000": 9_999_999_999_999})
    assert await store.list_user_sessions("alice") == []
    assert valkey_sync.zcard(index) == 0
