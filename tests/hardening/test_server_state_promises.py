"""Every feature at once while Valkey refuses work with a server state.

READONLY (the app's primary demoted by a failover), LOADING (a restart loading its data set)
and CLUSTERDOWN (a slot left uncovered under ``cluster-require-full-coverage``) are Valkey
answering with an error reply, produced for real. Each test checks one promise of the
README's "Failure behaviour" section per state (the parameter id names it): the cache fails
open, sessions fail closed on session routes only, each rate limit follows its ``on_error``,
never a 500, and everything works again, with its data, once the state clears.

Slots that move (MOVED, ASK, a manual Cluster failover) are no failure at all; they are
checked in ``test_slot_move_promises``, which reuses :func:`stack_on`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
import redis
from redis.crc import key_slot

from cachemw.valkey import Valkey, ValkeySettings
from cachemw.valkey.embedded import LOOPBACK, EmbeddedCluster, EmbeddedValkey, command
from tests.faults.budgets import SLACK, Stopwatch
from tests.hardening.stack import Stack, Visitor, build_stack, visiting
from tests.hardening.test_fault_promises import until_ok, warm_up
from tests.support import servers
from tests.support.nodes import caught_up, cluster_state, is_loading, role, wait_for
from tests.support.proxied import CLUSTER_SLOTS

REFUSAL_BUDGET = 0.5  # a refusal is an immediate error reply: this only bounds a loaded box
BREAKER_RESET = 0.2
# LOADING lasts as long as the restart loads its snapshot: 20k keys at 100 µs each, about
# 2 s or more, answering -LOADING after every KiB loaded; ample for one test's few requests.
SLOW_LOADER = ["--key-load-delay", "100", "--loading-process-events-interval-bytes", "1024"]
BALLAST_KEYS = 20_000
# A primary waits 5 s by default for more replicas before a full sync; these never come.
PROMPT_SYNC = ["--repl-diskless-sync-delay", "0"]


@asynccontextmanager
async def stack_on(url: str, budget: float) -> AsyncIterator[tuple[Stack, Visitor]]:
    """The full stack on ``url``, warmed up: a session with ["apple"], a stored teapot, both
    limits counted once."""
    settings = ValkeySettings(
        url=url, command_timeout=budget, connect_timeout=budget, breaker_reset_timeout=BREAKER_RESET
    )
    valkey = Valkey(settings)
    try:
        await valkey.ping(timeout=5.0)  # as the lifespan does: cluster topology known first
        stack = build_stack(valkey)
        async with visiting(stack) as visitor:
            await warm_up(visitor)
            yield stack, visitor
    finally:
        await valkey.aclose()


@dataclass
class Bed:
    """The full stack on a server in a refusing state."""

    state: str
    visitor: Visitor
    in_state: Callable[[], bool]  # the state still holds, so the requests really met it
    heal: Callable[[], None]  # blocking; idempotent

    async def timed(self, method: str, path: str, **kw: bool) -> httpx.Response:
        """One request, which must be answered within one call's budget (README: each call
        fails within ``command_timeout``)."""
        with Stopwatch() as watch:
            response = await self.visitor.request(method, path, **kw)
        assert watch.elapsed <= REFUSAL_BUDGET + SLACK, (path, watch.elapsed)
        return response


def fail_over_standalone(old: int, new: int) -> None:
    """What a failover does to a standalone pair: promote the caught-up replica, make the old
    primary a replica of it (resynced, with the same data)."""
    wait_for(lambda: caught_up(new, old), "replica caught up")
    command(new, "REPLICAOF", "NO", "ONE")
    command(old, "REPLICAOF", LOOPBACK, new)
    wait_for(lambda: caught_up(old, new), "old primary resynced as a replica")


@asynccontextmanager
async def readonly_state(request: pytest.FixtureRequest) -> AsyncIterator[Bed]:
    with (
        EmbeddedValkey(extra_args=PROMPT_SYNC) as old,
        EmbeddedValkey(extra_args=[*PROMPT_SYNC, "--replicaof", LOOPBACK, str(old.port)]) as new,
    ):

        def heal() -> None:  # an operator promotes the app's server back
            command(old.port, "REPLICAOF", "NO", "ONE")

        async with stack_on(old.url, REFUSAL_BUDGET) as (_, visitor):
            await asyncio.to_thread(fail_over_standalone, old.port, new.port)
            yield Bed(
                state="readonly",
                visitor=visitor,
                in_state=lambda: role(old.port) == "slave",
                heal=heal,
            )


def save_with_ballast(server: EmbeddedValkey) -> None:
    client = redis.Redis(port=server.port)
    try:
        pipe = client.pipeline(transaction=False)
        for index in range(BALLAST_KEYS):
            pipe.set(f"ballast:{index}", b"x")
        pipe.execute()
        client.save()
    finally:
        client.close()


@asynccontextmanager
async def loading_state(request: pytest.FixtureRequest) -> AsyncIterator[Bed]:
    with EmbeddedValkey(extra_args=SLOW_LOADER) as server:
        async with stack_on(server.url, REFUSAL_BUDGET) as (_, visitor):
            await asyncio.to_thread(save_with_ballast, server)
            await asyncio.to_thread(server.stop)
            restart = threading.Thread(target=server.start, kwargs={"timeout": 60.0})
            restart.start()
            try:
                await asyncio.to_thread(wait_for, lambda: is_loading(server.port), "LOADING")
                yield Bed(
                    state="loading",
                    visitor=visitor,
                    in_state=lambda: is_loading(server.port),
                    heal=lambda: restart.join(60.0),
                )
            finally:
                await asyncio.to_thread(restart.join, 60.0)


@asynccontextmanager
async def clusterdown_state(request: pytest.FixtureRequest) -> AsyncIterator[Bed]:
    cluster: EmbeddedCluster = request.getfixturevalue("one_node_cluster")
    port = cluster.nodes[0].port
    command(port, "FLUSHALL")
    async with stack_on(cluster.url, REFUSAL_BUDGET) as (_, visitor):
        sync = servers.sync_client(cluster.url)
        used = {key_slot(key) for key in servers.all_keys(sync)}
        sync.close()
        uncovered = next(slot for slot in range(CLUSTER_SLOTS) if slot not in used)

        def heal() -> None:
            with contextlib.suppress(RuntimeError):  # "already busy": healed before
                command(port, "CLUSTER", "ADDSLOTS", uncovered)
            wait_for(lambda: cluster_state(port) == "ok", "cluster_state:ok")

        # A slot none of the features' keys live in: full coverage fails them all.
        command(port, "CLUSTER", "DELSLOTS", uncovered)
        try:
            await asyncio.to_thread(wait_for, lambda: cluster_state(port) == "fail", "fail")
            yield Bed(
                state="clusterdown",
                visitor=visitor,
                in_state=lambda: cluster_state(port) == "fail",
                heal=heal,
            )
        finally:
            await asyncio.to_thread(heal)


# Keyed by "topology-state" (the test id, which the suite's summary counts per topology).
STATES: dict[str, Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Bed]]] = {
    "standalone-readonly": readonly_state,
    "standalone-loading": loading_state,
    "cluster-clusterdown": clusterdown_state,
}
# A read-only replica still answers reads, so a session that needs no expiry refresh loads.
SESSION_READ_STATUS = {"readonly": 200, "loading": 503, "clusterdown": 503}


@pytest.fixture(params=list(STATES))
async def bed(request: pytest.FixtureRequest) -> AsyncIterator[Bed]:
    async with STATES[request.param](request) as state:
        yield state


def assert_problem_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 503
    assert "retry-after" in response.headers


async def test_cached_route_serves_200_without_storing(bed: Bed) -> None:
    stored = [await bed.timed("GET", "/catalogue/teapot", with_cookie=False) for _ in range(3)]
    fresh = [await bed.timed("GET", "/catalogue/kettle", with_cookie=False) for _ in range(2)]
    assert [r.status_code for r in stored + fresh] == [200] * 5
    assert [r.json()["item"] for r in stored + fresh] == ["teapot"] * 3 + ["kettle"] * 2
    assert "hit" not in fresh[-1].headers["cache-status"]  # the app answered: not stored
    assert bed.in_state()


async def test_session_write_answers_503_problem_with_retry_after(bed: Bed) -> None:
    response = await bed.timed("POST", "/cart/pear")
    assert_problem_503(response)
    assert response.headers["retry-after"] == "2"
    assert response.headers["cache-control"] == "no-store"
    assert bed.in_state()


async def test_session_read_answers_the_cart_while_readable_else_503(bed: Bed) -> None:
    response = await bed.timed("GET", "/basket")
    if SESSION_READ_STATUS[bed.state] == 200:
        assert response.status_code == 200, response.text
        assert response.json() == {"items": ["apple"], "new": False}
    else:
        assert_problem_503(response)
    assert bed.in_state()


async def test_public_route_serves_200(bed: Bed) -> None:
    responses = [await bed.timed("GET", "/public") for _ in range(3)]
    assert [r.status_code for r in responses] == [200] * 3
    assert bed.in_state()


async def test_fail_open_limit_admits_unchecked(bed: Bed) -> None:
    responses = [await bed.timed("GET", "/search") for _ in range(3)]
    assert [r.status_code for r in responses] == [200] * 3
    assert all("ratelimit" not in r.headers for r in responses)
    assert bed.in_state()


async def test_fail_closed_limit_answers_503_problem(bed: Bed) -> None:
    for _ in range(3):
        assert_problem_503(await bed.timed("GET", "/export"))
    assert bed.in_state()


async def test_every_feature_works_again_with_its_data_once_the_state_clears(bed: Bed) -> None:
    await asyncio.to_thread(bed.heal)
    basket = await until_ok(bed.visitor, "GET", "/basket")
    assert basket.json() == {"items": ["apple"], "new": False}
    await until_ok(bed.visitor, "POST", "/cart/pear")
    assert (await bed.visitor.get("/basket")).json()["items"] == ["apple", "pear"]
    cached = await bed.visitor.get("/catalogue/teapot", with_cookie=False)
    assert cached.headers["cache-status"].startswith("cachemw; hit")
    for path in ("/search", "/export"):
        assert "ratelimit" in (await until_ok(bed.visitor, "GET", path)).headers
