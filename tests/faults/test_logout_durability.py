"""An acknowledged logout stays logged out after a Cluster failover (issue 9).

Valkey replicates asynchronously: a logout the primary ran can be missing on the replica
promoted when that primary dies. With ``SessionConfig(logout_replicas=1)`` a logout is
acknowledged only once a replica holds it (WAIT). These tests log in and out through the
whole middleware stack (rate limits, cache, sessions, headers) on a real Valkey Cluster with
one replica per primary, every byte through fault proxies: the session's primary is killed
right after the logout is acknowledged and the old cookie must stay anonymous; a logout no
replica can confirm answers 503, never 200.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from cachemw.cache import CacheMiddleware, CacheSettings, RouteCache
from cachemw.headers import HeadersMiddleware
from cachemw.ratelimit import RateLimitMiddleware
from cachemw.sessions import SessionConfig, SessionCookie, SessionMiddleware, SessionStore
from cachemw.sessions.fastapi import SessionDep, require_login
from cachemw.sessions.ids import session_ref
from cachemw.valkey import Valkey
from cachemw.valkey.embedded import EmbeddedValkey
from tests.faults.budgets import fault_settings
from tests.faults.test_cluster_failover import RECOVERY_BOUND, replicated
from tests.hardening.stack import origin_app, rules
from tests.support.proxied import ProxiedCluster

COOKIE = "sid"
STORE_TIMEOUT = 1.0  # WAIT gets half of it
SYNC_BOUND = 15.0  # a replica catching up on a loaded CI box
LOGIN_ATTEMPTS = 60  # each lands on a given primary with p = 1/3: (2/3)**60 ~ 3e-11 to miss


@pytest.fixture(scope="module")
def durable_cluster() -> Iterator[ProxiedCluster]:
    # A short node timeout keeps failure detection (and these tests) quick.
    with ProxiedCluster(primaries=3, replicas_per_primary=1, node_timeout_ms=1000) as cluster:
        yield cluster


def durable_app(store: SessionStore, valkey: Valkey) -> tuple[FastAPI, CacheMiddleware]:
    """The README's production stack (outermost first: rate limits, cache, sessions,
    headers) around the hardening tests' app plus login, logout and a login-only page."""
    app = origin_app()

    @app.post("/login/{user}")
    async def login(user: str, session: SessionDep) -> dict[str, bool]:
        session.rotate(user_id=user)
        return {"ok": True}

    @app.post("/logout")
    async def logout(session: SessionDep) -> dict[str, bool]:
        session.destroy()
        return {"ok": True}

    @app.get("/me")
    async def me(session: Annotated[Any, Depends(require_login)]) -> dict[str, Any]:
        return {"user": session.user_id}

    app.add_middleware(HeadersMiddleware)
    app.add_middleware(SessionMiddleware, store=store)
    app.add_middleware(
        CacheMiddleware,
        valkey=valkey,
        settings=CacheSettings(routes={"/public": RouteCache(enabled=False)}),
    )
    app.add_middleware(RateLimitMiddleware, valkey=valkey, rules=rules())
    app.middleware_stack = app.build_middleware_stack()
    layer: Any = app.middleware_stack
    while not isinstance(layer, CacheMiddleware):
        layer = layer.app
    return app, layer


class Site:
    """The stack behind one HTTP client; cookies are sent explicitly, per request."""

    def __init__(self, app: FastAPI, cache: CacheMiddleware, store: SessionStore) -> None:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://shop.test")
        self.cache = cache
        self.store = store

    async def request(self, method: str, path: str, sid: str | None = None) -> httpx.Response:
        self.http.cookies.clear()
        headers = {"cookie": f"{COOKIE}={sid}"} if sid else {}
        return await self.http.request(method, path, headers=headers)

    async def log_in(self, user: str) -> str:
        response = await self.request("POST", f"/login/{user}")
        assert response.status_code == 200, response.text
        return issued_sid(response)

    async def log_in_on(self, cluster: ProxiedCluster, primary: int, user: str) -> str:
        """Log in until the session lives on ``primary`` (ids are random; slots follow)."""
        for _ in range(LOGIN_ATTEMPTS):
            sid = await self.log_in(user)
            if cluster.proxy_for_key(self.key(sid)) is cluster.proxies[primary]:
                return sid
        raise AssertionError(f"no session landed on primary {primary}")

    def key(self, sid: str) -> str:
        return session_ref(sid).key(self.store.keyspace)


def issued_sid(response: httpx.Response) -> str:
    for line in response.headers.get_list("set-cookie"):
        name, _, rest = line.partition("=")
        if name == COOKIE and rest.split(";", 1)[0]:
            return rest.split(";", 1)[0]
    raise AssertionError(f"no session cookie in {response.headers!r}")


def cookie_cleared(response: httpx.Response) -> bool:
    return any(line.startswith(f"{COOKIE}=;") for line in response.headers.get_list("set-cookie"))


@asynccontextmanager
async def site_on(cluster: ProxiedCluster, **valkey_settings: Any) -> AsyncIterator[Site]:
    settings = {
        "command_timeout": 0.5,
        "breaker_failure_threshold": 5,
        "breaker_reset_timeout": 0.5,
        **valkey_settings,
    }
    async with Valkey(fault_settings(cluster, **settings)) as valkey:
        config = SessionConfig(
            cookie=SessionCookie(name=COOKIE, secure=False),
            logout_replicas=1,
            store_timeout=STORE_TIMEOUT,
            retry_after=1,
        )
        store = SessionStore(valkey, config)
        app, cache = durable_app(store, valkey)
        site = Site(app, cache, store)
        try:
            yield site
        finally:
            await site.http.aclose()
            await cache.aclose()


async def caught_up(cluster: ProxiedCluster, primary: int) -> None:
    replica = cluster.primaries + primary  # ProxiedCluster pairs replica i with primary i
    deadline = time.monotonic() + SYNC_BOUND
    while not replicated(cluster, primary, replica):
        assert time.monotonic() < deadline, "the replica never caught up"
        await asyncio.sleep(0.05)


def role(cluster: ProxiedCluster, index: int) -> str:
    info = str(cluster.admin(cluster.nodes[index].port, "INFO", "replication"))
    for line in info.splitlines():
        if line.startswith("role:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no role in INFO replication")


@contextmanager
def frozen(node: EmbeddedValkey) -> Iterator[None]:
    """The node stops answering anything (SIGSTOP on the server we started), then resumes."""
    pid = node.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize(
    ("primary", "multiplexed_connections"),
    [(0, 2), (2, 0)],
    ids=["multiplexed", "redispy"],  # each kills another primary of the same cluster
)
async def test_acknowledged_logout_stays_logged_out_after_the_primary_fails_over(
    durable_cluster: ProxiedCluster, primary: int, multiplexed_connections: int
) -> None:
    cluster = durable_cluster
    replica = cluster.primaries + primary
    async with site_on(cluster, multiplexed_connections=multiplexed_connections) as site:
        sid = await site.log_in_on(cluster, primary, f"alice-{primary}")
        assert (await site.request("GET", "/me", sid)).json() == {"user": f"alice-{primary}"}
        await caught_up(cluster, primary)  # the replica holds the logged-in session

        logout = await site.request("POST", "/logout", sid)
        assert logout.status_code == 200  # acknowledged: a replica holds the deletion
        assert cookie_cleared(logout)
        cluster.nodes[primary].kill()
        killed_at = time.monotonic()

        statuses: list[int] = []
        while time.monotonic() - killed_at < 2 * RECOVERY_BOUND:
            status = (await site.request("GET", "/me", sid)).status_code
            statuses.append(status)
            if status != 503:
                break
            await asyncio.sleep(0.1)
        print(f"anonymous after {time.monotonic() - killed_at:.2f}s: {set(statuses)}")
        # Fails closed while the slot has no primary, never logged in again.
        assert set(statuses[:-1]) <= {503}
        assert statuses[-1] == 401, f"old cookie still {statuses[-1]} after the failover"
        assert role(cluster, replica) == "master"
        assert cluster.admin(cluster.nodes[replica].port, "EXISTS", site.key(sid)) == 0

        # The app serves again: a new visitor logs in on the promoted replica's cluster.
        new_sid = await site.log_in(f"bob-{primary}")
        assert (await site.request("GET", "/me", new_sid)).status_code == 200
        assert (await site.request("GET", "/public")).status_code == 200


async def test_logout_no_replica_can_confirm_answers_503_never_200(
    durable_cluster: ProxiedCluster,
) -> None:
    cluster = durable_cluster
    primary = 1
    async with site_on(cluster) as site:
        sid = await site.log_in_on(cluster, primary, "carol")
        await caught_up(cluster, primary)
        with frozen(cluster.nodes[cluster.primaries + primary]):
            logout = await site.request("POST", "/logout", sid)
        assert logout.status_code == 503
        assert logout.headers["content-type"] == "application/problem+json"
        assert cookie_cleared(logout)
        # The primary did delete it: the old cookie is anonymous there.
        assert (await site.request("GET", "/me", sid)).status_code == 401
        await caught_up(cluster, primary)  # leave a healthy pair for the other tests


async def test_logout_on_a_cluster_without_replicas_answers_503(
    proxied_cluster: ProxiedCluster,
) -> None:
    proxied_cluster.clear()
    proxied_cluster.flush()
    async with site_on(proxied_cluster) as site:
        sid = await site.log_in("dave")
        logout = await site.request("POST", "/logout", sid)
        assert logout.status_code == 503
        assert cookie_cleared(logout)


async def test_wait_for_replicas_counts_writes_made_on_other_connections(
    durable_cluster: ProxiedCluster,
) -> None:
    cluster = durable_cluster
    primary = 1
    replica_node = cluster.nodes[cluster.primaries + primary]
    async with Valkey(fault_settings(cluster, command_timeout=0.5)) as valkey:
        key = next(
            key
            for key in (valkey.keyspace.key_for("durable", f"{i}".encode()) for i in range(999))
            if cluster.proxy_for_key(key) is cluster.proxies[primary]
        )
        await valkey.execute("SET", key, b"1", timeout=2.0)
        await caught_up(cluster, primary)
        with frozen(replica_node):
            await valkey.execute("DEL", key, timeout=2.0)  # some pooled connection
            # A bare WAIT on a connection that wrote nothing counts the frozen replica: it
            # holds everything *that* connection wrote. wait_for_replicas fences first.
            bare = cluster.admin(cluster.nodes[primary].port, "WAIT", 1, 50)
            confirmed = await valkey.wait_for_replicas(key, 1, timeout=2.0)
        assert bare == 1
        assert confirmed == 0
        await caught_up(cluster, primary)
        assert await valkey.wait_for_replicas(key, 1, timeout=2.0) == 1


async def test_wait_for_replicas_needs_a_key_with_a_hash_tag(
    durable_cluster: ProxiedCluster,
) -> None:
    async with Valkey(fault_settings(durable_cluster)) as valkey:
        with pytest.raises(ValueError, match="hash tag"):
            await valkey.wait_for_replicas("no-tag", 1)
