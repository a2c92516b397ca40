"""``logout_replicas``: a deletion is acknowledged only once enough replicas hold it.

Standalone servers of the tests' own: a primary alone (no replica can confirm) and a primary
with one live replica. The Cluster failover itself is in tests/faults/test_logout_durability.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from cachemw.metrics import Metrics
from cachemw.sessions import SessionConfig, SessionNotReplicated, SessionStore
from cachemw.sessions.ids import session_ref
from cachemw.valkey import Valkey
from cachemw.valkey.embedded import LOOPBACK, EmbeddedValkey, command
from tests.conftest import make_settings
from tests.sessions.apps import fastapi_app
from tests.sessions.conftest import COOKIE, Browser, session_cookies

CLEARED = f"{COOKIE}=; Max-Age=0;"
SYNC_BOUND = 20.0  # a full resync on a loaded CI box
STORE_TIMEOUT = 1.0  # WAIT gets half of it: "too few replicas" must not become a timeout


def replication_info(port: int) -> dict[str, str]:
    raw = command(port, "INFO", "replication")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {name: value for name, value in pairs}


def replica_in_sync(primary: int) -> bool:
    """The primary's replica is online and has acknowledged everything written so far (the
    primary's own view, which is what WAIT counts). A replica reported online right after its
    full sync may still be loading and acknowledges nothing yet: hence ``written > 0`` (see
    :func:`attach_replica`, which writes first)."""
    info = replication_info(primary)
    fields = dict(pair.split("=", 1) for pair in info.get("slave0", "").split(",") if "=" in pair)
    if fields.get("state") != "online":
        return False
    written = int(info["master_repl_offset"])
    return written > 0 and int(fields["offset"]) >= written


def attach_replica(primary: EmbeddedValkey) -> EmbeddedValkey:
    """Start a replica of ``primary`` and return once it acknowledges the primary's writes."""
    command(primary.port, "CONFIG", "SET", "repl-diskless-sync-delay", "0")
    server = EmbeddedValkey(extra_args=("--replicaof", LOOPBACK, str(primary.port)))
    server.start()
    try:
        command(primary.port, "SET", "replica-probe", "1")
        command(primary.port, "DEL", "replica-probe")
        deadline = time.monotonic() + SYNC_BOUND
        while not replica_in_sync(primary.port):
            assert time.monotonic() < deadline, "the replica never caught up"
            time.sleep(0.05)
    except BaseException:
        server.cleanup()
        raise
    return server


@pytest.fixture
def replica(private_server: EmbeddedValkey) -> Iterator[EmbeddedValkey]:
    """A live replica of ``private_server``, in sync when the test starts."""
    server = attach_replica(private_server)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def primary_valkey(private_server: EmbeddedValkey) -> AsyncIterator[Valkey]:
    client = Valkey(make_settings(private_server.url))
    try:
        yield client
    finally:
        await client.aclose()


def durable_store(valkey: Valkey, replicas: int, metrics: Metrics | None = None) -> SessionStore:
    config = SessionConfig(logout_replicas=replicas, store_timeout=STORE_TIMEOUT, retry_after=2)
    return SessionStore(valkey, config, metrics=metrics)


@pytest.fixture
async def opened() -> AsyncIterator[list[Browser]]:
    """Every browser a test opens, closed after it."""
    browsers: list[Browser] = []
    yield browsers
    for browser in browsers:
        await browser.aclose()


async def logged_in(store: SessionStore, opened: list[Browser]) -> Browser:
    browser = Browser(fastapi_app(store))
    opened.append(browser)
    assert (await browser.post("/login/alice")).status_code == 200
    assert (await browser.get("/me")).json() == {"user": "alice"}
    return browser


def assert_unavailable_and_cleared(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "2"
    assert response.headers["cache-control"] == "no-store"
    (cookie,) = session_cookies(response)
    assert cookie.startswith(CLEARED)


def wait_calls(port: int) -> int:
    raw = command(port, "INFO", "commandstats")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    for line in text.splitlines():
        if line.startswith("cmdstat_wait:calls="):
            return int(line.split("calls=", 1)[1].split(",", 1)[0])
    return 0


async def test_logout_without_logout_replicas_does_not_wait(
    private_server: EmbeddedValkey, primary_valkey: Valkey, opened: list[Browser]
) -> None:
    browser = await logged_in(durable_store(primary_valkey, 0), opened)
    response = await browser.post("/logout")
    assert response.status_code == 200
    (cookie,) = session_cookies(response)
    assert cookie.startswith(CLEARED)
    assert wait_calls(private_server.port) == 0


async def test_logout_no_replica_confirms_answers_503_and_still_clears_the_cookie(
    primary_valkey: Valkey, opened: list[Browser]
) -> None:
    browser = await logged_in(durable_store(primary_valkey, 1), opened)
    old_sid = browser.sid
    assert_unavailable_and_cleared(await browser.post("/logout"))
    # The primary did delete it: the old cookie no longer logs anyone in.
    response = await browser.get("/me", cookie_header=f"{COOKIE}={old_sid}")
    assert response.status_code == 401


async def test_logout_confirmed_by_a_replica_is_on_the_replica_when_acknowledged(
    replica: EmbeddedValkey, primary_valkey: Valkey, opened: list[Browser]
) -> None:
    browser = await logged_in(durable_store(primary_valkey, 1), opened)
    assert browser.sid is not None
    key = session_ref(browser.sid).key(primary_valkey.keyspace)
    response = await browser.post("/logout")
    assert response.status_code == 200
    # Acknowledged means replicated: no waiting here.
    assert command(replica.port, "EXISTS", key) == 0


async def test_rotation_no_replica_confirms_answers_503_and_clears_the_cookie(
    primary_valkey: Valkey, opened: list[Browser]
) -> None:
    browser = await logged_in(durable_store(primary_valkey, 1), opened)
    assert_unavailable_and_cleared(await browser.post("/login/bob"))


async def test_login_without_a_previous_session_does_not_wait(
    private_server: EmbeddedValkey, primary_valkey: Valkey, opened: list[Browser]
) -> None:
    await logged_in(durable_store(primary_valkey, 1), opened)
    assert wait_calls(private_server.port) == 0


async def test_revoke_user_sessions_no_replica_confirms_raises_and_keeps_the_index(
    primary_valkey: Valkey, opened: list[Browser]
) -> None:
    store = durable_store(primary_valkey, 1)
    await logged_in(store, opened)
    with pytest.raises(SessionNotReplicated):
        await store.revoke_user_sessions("alice")
    index = await primary_valkey.execute("ZCARD", store.index_key("alice"))
    assert index == 1  # a retry still finds the session to delete and confirm


async def test_revoke_session_no_replica_confirms_raises(
    primary_valkey: Valkey, opened: list[Browser]
) -> None:
    store = durable_store(primary_valkey, 1)
    browser = await logged_in(store, opened)
    assert browser.sid is not None
    with pytest.raises(SessionNotReplicated):
        await store.revoke_session("alice", session_ref(browser.sid).handle)


async def test_revocations_confirmed_by_a_replica_succeed(
    replica: EmbeddedValkey, primary_valkey: Valkey, opened: list[Browser]
) -> None:
    store = durable_store(primary_valkey, 1)
    browser = await logged_in(store, opened)
    assert await store.revoke_user_sessions("alice") == 1
    assert (await browser.get("/me")).status_code == 401


async def test_unconfirmed_logouts_are_logged_once_and_counted_each_time(
    primary_valkey: Valkey, opened: list[Browser], caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    store = durable_store(primary_valkey, 1, metrics)
    caplog.set_level(logging.INFO, logger="cachemw.sessions")
    sids: list[str] = []
    for _ in range(2):
        browser = await logged_in(store, opened)
        assert browser.sid is not None
        sids.append(browser.sid)
        assert (await browser.post("/logout")).status_code == 503
    warnings = [r for r in caplog.records if "not confirmed" in r.getMessage()]
    assert len(warnings) == 1
    counted = metrics.value("cachemw_session_events_total", event="deletion_not_replicated")
    assert counted == 2
    assert not any(sid in r.getMessage() for sid in sids for r in caplog.records)


async def test_recovery_of_replica_confirmation_is_logged_once(
    private_server: EmbeddedValkey,
    primary_valkey: Valkey,
    opened: list[Browser],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = durable_store(primary_valkey, 1)
    caplog.set_level(logging.INFO, logger="cachemw.sessions")
    browser = await logged_in(store, opened)
    assert (await browser.post("/logout")).status_code == 503
    late = await asyncio.to_thread(attach_replica, private_server)
    try:
        for _ in range(2):
            browser = await logged_in(store, opened)
            assert (await browser.post("/logout")).status_code == 200
    finally:
        late.cleanup()
    again = [r for r in caplog.records if "confirm session deletions again" in r.getMessage()]
    assert len(again) == 1


async def test_logout_on_a_full_valkey_is_still_confirmed(
    private_server: EmbeddedValkey,
    replica: EmbeddedValkey,
    primary_valkey: Valkey,
    opened: list[Browser],
) -> None:
    browser = await logged_in(durable_store(primary_valkey, 1), opened)
    command(private_server.port, "CONFIG", "SET", "maxmemory", "1")  # every write is OOM
    try:
        response = await browser.post("/logout")
    finally:
        command(private_server.port, "CONFIG", "SET", "maxmemory", "0")
    assert response.status_code == 200  # DEL and the WAIT's fence are allowed when full


async def test_log_out_everywhere_waits_once_per_primary(
    private_server: EmbeddedValkey,
    replica: EmbeddedValkey,
    primary_valkey: Valkey,
    opened: list[Browser],
) -> None:
    store = durable_store(primary_valkey, 1)
    for _ in range(3):
        await logged_in(store, opened)
    before = wait_calls(private_server.port)
    assert await store.revoke_user_sessions("alice") == 3
    assert wait_calls(private_server.port) - before == 1
