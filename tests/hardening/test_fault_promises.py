"""Every feature at once while Valkey is stopped, black-holed, slow, resetting or refusing.

Each test checks one promise of the README's "Failure behaviour" section, once per fault
(the parameter id names it) and per topology: the cache fails open within its budget,
sessions fail closed on session routes only, each rate limit follows its ``on_error``, the
shared breaker opens and closes by itself, and nothing leaks. A real stop is only done on
standalone: the cluster's nodes are shared by the whole session.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from cachemw.valkey import BreakerState, Valkey, ValkeySettings
from tests.faults.budgets import SLACK, Stopwatch
from tests.hardening.stack import Stack, Visitor, build_stack, visiting
from tests.support.proxied import Proxied, ProxiedStandalone

BUDGET = 0.1  # command_timeout: what one Valkey call may cost a request
BREAKER_RESET = 0.3
RECOVERY_TIMEOUT = 5.0


@dataclass(frozen=True)
class FaultKind:
    """How to break the path to Valkey, and how to heal it."""

    inject: Callable[[Proxied], object]
    heal: Callable[[Proxied], object]
    standalone_only: bool = False


def _stop(target: Proxied) -> None:
    assert isinstance(target, ProxiedStandalone)
    target.server.stop()


def _restart(target: Proxied) -> None:
    assert isinstance(target, ProxiedStandalone)
    target.server.start()


FAULTS = {
    "stopped": FaultKind(_stop, _restart, standalone_only=True),
    "black-holed": FaultKind(lambda p: p.black_hole(duration=20), lambda p: p.clear()),
    "slow": FaultKind(lambda p: p.add_latency(BUDGET * 4, duration=20), lambda p: p.clear()),
    "resetting": FaultKind(lambda p: p.reset_after(0, duration=20), lambda p: p.clear()),
    "refusing": FaultKind(lambda p: p.refuse_connections(duration=20), lambda p: p.clear()),
}


COMBINATIONS = [
    (topology, name)
    for topology in ("standalone", "cluster")
    for name, kind in FAULTS.items()
    if topology == "standalone" or not kind.standalone_only
]


@pytest.fixture(params=COMBINATIONS, ids=[f"{t}-{n}" for t, n in COMBINATIONS])
def proxied(request: pytest.FixtureRequest) -> Iterator[Proxied]:
    """A real, empty Valkey behind fault proxies: the topology
    comes with the fault, so a fault a topology cannot have is never even collected."""
    topology, _ = request.param
    target: Proxied = request.getfixturevalue(f"hardening_{topology}")
    target.clear()
    target.flush()
    try:
        yield target
    finally:
        target.clear()


@pytest.fixture
def fault(request: pytest.FixtureRequest, proxied: Proxied) -> Iterator[FaultKind]:
    """The fault to inject; healed after the test whatever happened (healing twice is fine)."""
    kind = FAULTS[request.node.callspec.params["proxied"][1]]
    try:
        yield kind
    finally:
        kind.heal(proxied)


@dataclass
class Bed:
    proxied: Proxied
    valkey: Valkey
    stack: Stack
    visitor: Visitor
    client_name: str


@pytest.fixture
async def bed(proxied: Proxied) -> AsyncIterator[Bed]:
    """The full stack on the proxied server, warmed up: a stored catalogue entry and a
    session with a cart, every connection a later request uses already open."""
    name = f"cachemw-hardening-{uuid.uuid4().hex[:10]}"
    valkey = Valkey(
        ValkeySettings(
            url=proxied.url,
            command_timeout=BUDGET,
            connect_timeout=BUDGET,
            breaker_failure_threshold=3,
            breaker_reset_timeout=BREAKER_RESET,
            client_name=name,
        )
    )
    await valkey.ping(timeout=5.0)  # as the lifespan does: cluster topology known first
    stack = build_stack(valkey)
    try:
        async with visiting(stack) as visitor:
            await warm_up(visitor)
            yield Bed(proxied, valkey, stack, visitor, name)
    finally:
        await valkey.aclose()


async def until_ok(visitor: Visitor, method: str, path: str, **kw: bool) -> httpx.Response:
    """Set-up, not under test: a loaded machine may blow the short budget of a first call
    (connection set-up to every node), so repeat until the route answers 200."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        response = await visitor.request(method, path, **kw)
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, (path, response.status_code)
            return response
        await asyncio.sleep(BREAKER_RESET / 3)


async def warm_up(visitor: Visitor) -> None:
    await until_ok(visitor, "POST", "/cart/apple")
    for _ in range(3):
        await until_ok(visitor, "GET", "/catalogue/teapot", with_cookie=False)
        await until_ok(visitor, "GET", "/basket")
        await until_ok(visitor, "GET", "/search")
        await until_ok(visitor, "GET", "/export")
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    cached = await visitor.get("/catalogue/teapot", with_cookie=False)
    while not cached.headers["cache-status"].startswith("cachemw; hit"):
        assert time.monotonic() < deadline, cached.headers["cache-status"]
        await asyncio.sleep(BREAKER_RESET / 3)
        cached = await visitor.get("/catalogue/teapot", with_cookie=False)


async def timed(visitor: Visitor, path: str, **kw: bool) -> tuple[httpx.Response, float]:
    with Stopwatch() as watch:
        response = await visitor.get(path, **kw)
    return response, watch.elapsed


async def test_cached_route_serves_200_from_the_app_within_budget(
    bed: Bed, fault: FaultKind
) -> None:
    fault.inject(bed.proxied)
    results = [await timed(bed.visitor, "/catalogue/teapot", with_cookie=False) for _ in range(8)]
    assert [r.status_code for r, _ in results] == [200] * 8
    assert [r.json()["item"] for r, _ in results] == ["teapot"] * 8
    # One lookup's budget at most (then the breaker answers at once), plus scheduling slack.
    assert max(elapsed for _, elapsed in results) <= BUDGET + SLACK


async def test_session_route_answers_503_problem_with_retry_after(
    bed: Bed, fault: FaultKind
) -> None:
    fault.inject(bed.proxied)
    for _ in range(4):  # before and after the breaker opens
        response, elapsed = await timed(bed.visitor, "/basket")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "2"
        assert response.headers["cache-control"] == "no-store"
        assert response.json()["status"] == 503
        assert elapsed <= BUDGET + SLACK


async def test_public_route_serves_200(bed: Bed, fault: FaultKind) -> None:
    fault.inject(bed.proxied)
    for _ in range(4):
        response, elapsed = await timed(bed.visitor, "/public")
        assert response.status_code == 200
        assert response.json() == {"ok": True}
        assert elapsed <= SLACK  # no Valkey call at all on this route


async def test_fail_open_limit_admits(bed: Bed, fault: FaultKind) -> None:
    fault.inject(bed.proxied)
    for _ in range(4):
        response, elapsed = await timed(bed.visitor, "/search")
        assert response.status_code == 200
        assert "ratelimit" not in response.headers  # unchecked: nothing to promise
        assert elapsed <= BUDGET + SLACK


async def test_fail_closed_limit_answers_503(bed: Bed, fault: FaultKind) -> None:
    fault.inject(bed.proxied)
    for _ in range(4):
        response, elapsed = await timed(bed.visitor, "/export")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert "retry-after" in response.headers
        assert elapsed <= BUDGET + SLACK


def breaker_state(valkey: Valkey) -> BreakerState:
    # A call, not an attribute, so the type checker does not pin the state between asserts.
    return valkey.breaker.state


async def all_routes_work(visitor: Visitor) -> bool:
    statuses = [
        (await visitor.get("/basket")).status_code,
        (await visitor.get("/search")).status_code,
        (await visitor.get("/export")).status_code,
        (await visitor.get("/public")).status_code,
    ]
    await visitor.get("/catalogue/kettle", with_cookie=False)
    cached = await visitor.get("/catalogue/kettle", with_cookie=False)
    return statuses == [200] * 4 and cached.headers["cache-status"].startswith("cachemw; hit")


async def test_breaker_opens_then_recovers_by_itself_when_fault_clears(
    bed: Bed, fault: FaultKind
) -> None:
    fault.inject(bed.proxied)
    for _ in range(6):
        await bed.visitor.get("/export")
    assert breaker_state(bed.valkey) is not BreakerState.CLOSED
    fault.heal(bed.proxied)
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    recovered = False
    while not recovered and time.monotonic() < deadline:
        await asyncio.sleep(BREAKER_RESET / 3)
        recovered = await all_routes_work(bed.visitor)
    assert recovered
    assert breaker_state(bed.valkey) is BreakerState.CLOSED


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def test_no_task_or_connection_leak_after_fault(proxied: Proxied, fault: FaultKind) -> None:
    name = f"cachemw-leak-{uuid.uuid4().hex[:10]}"
    tasks_before = asyncio.all_tasks()
    links_before = proxied.stats().open_links
    valkey = Valkey(
        ValkeySettings(
            url=proxied.url,
            command_timeout=BUDGET,
            connect_timeout=BUDGET,
            breaker_failure_threshold=3,
            breaker_reset_timeout=BREAKER_RESET,
            client_name=name,
            max_connections=8,
        )
    )
    await valkey.ping(timeout=5.0)
    stack = build_stack(valkey)
    try:
        async with visiting(stack) as visitor:
            await warm_up(visitor)
            fault.inject(proxied)
            for path in ("/catalogue/teapot", "/basket", "/search", "/export", "/cart/x") * 3:
                await visitor.request("POST" if path.startswith("/cart") else "GET", path)
            fault.heal(proxied)
            deadline = time.monotonic() + RECOVERY_TIMEOUT
            while not await all_routes_work(visitor) and time.monotonic() < deadline:
                await asyncio.sleep(BREAKER_RESET / 3)
            # Bounded while running: the pool and the multiplexed slots per node, no more.
            per_node = valkey.settings.max_connections + valkey.settings.multiplexed_connections
            assert proxied.client_count(name) <= per_node * len(proxied.nodes)
    finally:
        await valkey.aclose()
    assert await eventually(lambda: proxied.client_count(name) == 0)
    assert await eventually(lambda: proxied.stats().open_links <= links_before)
    await asyncio.sleep(0)
    leaked = {t for t in asyncio.all_tasks() - tasks_before if not t.done()}
    leaked.discard(asyncio.current_task())
    assert leaked == set()
