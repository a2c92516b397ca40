"""Concurrent requests on one session: per-field writes merge; a logout always wins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis

from cachemw.metrics import Metrics
from cachemw.sessions import SessionStore
from tests.sessions.apps import Gate
from tests.sessions.conftest import Browser
from tests.support.servers import all_keys


async def test_slow_write_racing_logout_leaves_no_session(
    browsers: Callable[[], Browser], gate: Gate, valkey_sync: redis.Redis
) -> None:
    tab1 = browsers()
    await tab1.post("/cart/apple")
    tab2 = browsers()
    tab2.sid = tab1.sid
    r1 = asyncio.create_task(tab1.post("/slow-cart/pear"))  # R1: slow, writes `cart`
    await asyncio.wait_for(gate.loaded.wait(), 5)
    logout = await tab2.post("/logout")  # R2
    assert logout.status_code == 200
    gate.release.set()
    assert (await r1).status_code == 200
    assert all_keys(valkey_sync) == []


async def test_write_racing_logout_is_counted(
    browsers: Callable[[], Browser], gate: Gate, store: SessionStore
) -> None:
    metrics = store.metrics = Metrics()
    tab1 = browsers()
    await tab1.post("/cart/apple")
    tab2 = browsers()
    tab2.sid = tab1.sid
    r1 = asyncio.create_task(tab1.post("/slow-cart/pear"))
    await asyncio.wait_for(gate.loaded.wait(), 5)
    await tab2.post("/logout")
    gate.release.set()
    await r1
    assert metrics.value("cachemw_session_events_total", event="write_dropped") == 1


async def test_slow_write_racing_rotation_does_not_resurrect_old_id(
    browsers: Callable[[], Browser], gate: Gate, store: SessionStore, valkey_sync: redis.Redis
) -> None:
    tab1 = browsers()
    await tab1.post("/cart/apple")
    tab2 = browsers()
    tab2.sid = tab1.sid
    r1 = asyncio.create_task(tab1.post("/slow-cart/pear"))
    await asyncio.wait_for(gate.loaded.wait(), 5)
    await tab2.post("/login/alice")
    gate.release.set()
    await r1
    assert len([k for k in all_keys(valkey_sync) if b":sess:" in k]) == 1
    assert (await tab2.get("/read")).json()["cart"] == ["apple"]


async def test_parallel_writes_to_fields_a_and_b_both_persist(
    browsers: Callable[[], Browser], gate: Gate, valkey_sync: redis.Redis
) -> None:
    first = browsers()
    await first.post("/set/seed/1")
    second = browsers()
    second.sid = first.sid
    # Both requests load the session before either writes.
    slow = asyncio.create_task(first.post("/slow-cart/pear"))
    await asyncio.wait_for(gate.loaded.wait(), 5)
    await second.post("/set/a/1")
    gate.release.set()
    await slow
    await second.post("/set/b/2")
    (key,) = [k for k in all_keys(valkey_sync) if b":sess:" in k]
    stored = valkey_sync.hgetall(key)
    assert {n for n in stored if not n.startswith(b"@")} == {b"seed", b"cart", b"a", b"b"}


async def test_many_parallel_writes_to_distinct_fields_are_all_stored(
    browsers: Callable[[], Browser], valkey_sync: redis.Redis
) -> None:
    first = browsers()
    await first.post("/set/seed/1")
    tabs = [browsers() for _ in range(20)]
    for tab in tabs:
        tab.sid = first.sid
    await asyncio.gather(
        *(tab.post(f"/set/{'a' if i % 2 else 'b'}{i}/v") for i, tab in enumerate(tabs))
    )
    (key,) = [k for k in all_keys(valkey_sync) if b":sess:" in k]
    stored = {name for name in valkey_sync.hkeys(key) if not name.startswith(b"@")}
    expected = {f"{'a' if i % 2 else 'b'}{i}".encode() for i in range(20)} | {b"seed"}
    assert stored == expected
