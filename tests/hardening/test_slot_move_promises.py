"""Every feature at once while a Valkey Cluster moves the slots its data lives in.

MOVED and ASK (a slot migrated the legacy way, ``CLUSTER SETSLOT`` and ``MIGRATE``, or handed
over whole by Valkey 9's atomic ``CLUSTER MIGRATESLOTS``) and a manual ``CLUSTER FAILOVER``
are no failure at all. Each move (the parameter id names it) runs under traffic on every
route, and the tests check that every feature keeps answering without an error while the
slots move, and that the session, the cached entry and the limit counter are still there
afterwards. (In Cluster a demoted primary answers MOVED, not READONLY, so clients follow the
slot to its new primary: the failover case checks that.) The fixture also checks that the
nodes really answered the expected redirects, or the move went unseen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from redis.crc import key_slot

from cachemw.metrics import Metrics
from cachemw.valkey.embedded import LOOPBACK, EmbeddedCluster, command
from tests.hardening.stack import Visitor
from tests.hardening.test_server_loss import remaining
from tests.hardening.test_server_state_promises import stack_on
from tests.support import servers
from tests.support.nodes import (
    caught_up,
    node_id,
    owned_by,
    owner_of,
    redirects_answered,
    role,
    wait_for,
)

MOVE_BUDGET = 2.0  # no call may fail while slots move, even on a loaded box


async def migrate_legacy(cluster: EmbeddedCluster, slots: list[int]) -> None:
    """SETSLOT IMPORTING/MIGRATING, MIGRATE one key at a time (moved keys answer ASK, new keys
    go to the target by ASK, multi-key calls may meet TRYAGAIN), then SETSLOT NODE (MOVED)."""
    admin = asyncio.to_thread
    for slot in slots:
        source = owner_of(cluster, slot)
        target = next(n.port for n in cluster.nodes if n.port != source)
        source_id, target_id = node_id(source), node_id(target)
        await admin(command, target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        await admin(command, source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        await asyncio.sleep(0.05)
        while batch := await admin(command, source, "CLUSTER", "GETKEYSINSLOT", slot, 1):
            assert isinstance(batch, list)
            await admin(command, source, "MIGRATE", LOOPBACK, target, "", 0, 5000, "KEYS", *batch)
            await asyncio.sleep(0.1)  # traffic meets a half-moved slot: ASK, TRYAGAIN
        for port in (target, source):
            await admin(command, port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        await admin(wait_for, owned_by(cluster, slot, target), "slot handed over")


async def migrate_atomic(cluster: EmbeddedCluster, slots: list[int]) -> None:
    """Valkey 9's CLUSTER MIGRATESLOTS: the slot is handed over whole (then MOVED)."""
    for slot in slots:
        source = owner_of(cluster, slot)
        target = next(n.port for n in cluster.nodes if n.port != source)
        await asyncio.to_thread(
            command, source,
            "CLUSTER", "MIGRATESLOTS", "SLOTSRANGE", slot, slot, "NODE", node_id(target),
        )  # fmt: skip
        await asyncio.to_thread(wait_for, owned_by(cluster, slot, target), "atomic migration done")


async def fail_over_manually(cluster: EmbeddedCluster, slots: list[int]) -> None:
    """CLUSTER FAILOVER on the replica: it takes over every slot, the primary is demoted and
    answers MOVED."""
    ports = [node.port for node in cluster.nodes]
    replica = next(port for port in ports if role(port) == "slave")
    primary = next(port for port in ports if port != replica)
    await asyncio.to_thread(wait_for, lambda: caught_up(replica, primary), "replica caught up")
    await asyncio.to_thread(command, replica, "CLUSTER", "FAILOVER")
    await asyncio.to_thread(
        wait_for,
        lambda: (
            all(owner_of(cluster, slot) == replica for slot in slots) and role(primary) == "slave"
        ),
        "manual failover done",
    )


@dataclass(frozen=True)
class Move:
    cluster_fixture: str
    run: Callable[[EmbeddedCluster, list[int]], Awaitable[None]]
    redirects: tuple[str, ...]  # what the traffic must have met, or the move went unseen


MOVES = {
    "cluster-legacy-migration": Move("two_primary_cluster", migrate_legacy, ("ASK", "MOVED")),
    "cluster-atomic-migration": Move("two_primary_cluster", migrate_atomic, ("MOVED",)),
    "cluster-manual-failover": Move("replicated_cluster", fail_over_manually, ("MOVED",)),
}


@dataclass
class Traffic:
    """One visitor using every route in turn until stopped; records every answer."""

    visitor: Visitor
    answers: list[tuple[str, httpx.Response]] = field(default_factory=list)
    cart: list[str] = field(default_factory=lambda: ["apple"])  # acknowledged, in order
    running: bool = True

    async def run(self) -> None:
        for number in range(10_000):
            if not self.running:
                return
            item = f"item{number}"
            for method, path, with_cookie in (
                ("GET", "/catalogue/teapot", False),
                ("POST", f"/cart/{item}", True),
                ("GET", "/basket", True),
                ("GET", "/search", True),
                ("GET", "/export", True),
                ("GET", "/public", True),
            ):
                response = await self.visitor.request(method, path, with_cookie=with_cookie)
                route = f"{method} /cart" if path.startswith("/cart") else f"{method} {path}"
                self.answers.append((route, response))
                if route == "POST /cart" and response.status_code == 200:
                    self.cart.append(item)
            await asyncio.sleep(0.01)


@dataclass
class Moved:
    url: str
    visitor: Visitor
    traffic: Traffic
    errors_during: dict[str, float]  # error and fail-open counters that grew meanwhile
    search_before: int  # the search limit's remaining count just before the move
    keys_before: list[bytes]  # durable keys (sessions, entries, counters) before the move


def error_counters(metrics: Metrics) -> dict[str, float]:
    return {
        name: value
        for name, value in metrics.snapshot().items()
        if "error" in name or "fail_open" in name
    }


def durable_keys(url: str) -> list[bytes]:
    sync = servers.sync_client(url)
    try:
        # Fill locks and the like come and go; sessions, entries and counters stay.
        return [key for key in servers.all_keys(sync) if not 0 <= sync.pttl(key) < 30_000]
    finally:
        sync.close()


@pytest.fixture(params=list(MOVES))
async def moved(request: pytest.FixtureRequest) -> AsyncIterator[Moved]:
    """The full stack under traffic while its data's slots move (or fail over)."""
    move = MOVES[request.param]
    cluster: EmbeddedCluster = request.getfixturevalue(move.cluster_fixture)
    sync = servers.sync_client(cluster.url)
    servers.flush_all(sync)
    sync.close()
    async with stack_on(cluster.url, MOVE_BUDGET) as (stack, visitor):
        keys_before = durable_keys(cluster.url)
        slots = sorted({key_slot(key) for key in keys_before})
        search_before = remaining(await visitor.get("/search"))
        errors_before = error_counters(stack.metrics)
        redirects_before = redirects_answered(cluster)
        traffic = Traffic(visitor)
        task = asyncio.create_task(traffic.run())
        try:
            await asyncio.sleep(0.1)
            await move.run(cluster, slots)
            await asyncio.sleep(0.3)  # traffic after the hand-over: MOVED, then the new owner
        finally:
            traffic.running = False
            await task
        errors_after = error_counters(stack.metrics)
        redirects = {
            code: count - redirects_before[code]
            for code, count in redirects_answered(cluster).items()
        }
        assert all(redirects[code] for code in move.redirects), redirects  # the move was seen
        grown = {k: v - errors_before.get(k, 0) for k, v in errors_after.items()}
        yield Moved(
            url=cluster.url,
            visitor=visitor,
            traffic=traffic,
            errors_during={k: v for k, v in grown.items() if v},
            search_before=search_before,
            keys_before=keys_before,
        )


async def test_every_feature_answers_without_error_while_slots_move(moved: Moved) -> None:
    answers = moved.traffic.answers
    assert len(answers) >= 6
    failed = [(route, r.status_code, r.text[:80]) for route, r in answers if r.status_code != 200]
    assert failed == []
    assert all(
        r.headers["cache-status"].startswith("cachemw; hit")
        for route, r in answers
        if route == "GET /catalogue/teapot"
    )
    limited = [r for route, r in answers if route in ("GET /search", "GET /export")]
    assert all("ratelimit" in r.headers for r in limited)  # checked, never failed open
    assert moved.errors_during == {}


async def test_session_entry_and_counter_are_still_there_after_slots_move(moved: Moved) -> None:
    basket = await moved.visitor.get("/basket")
    assert basket.json() == {"items": moved.traffic.cart, "new": False}
    cached = await moved.visitor.get("/catalogue/teapot", with_cookie=False)
    assert cached.headers["cache-status"].startswith("cachemw; hit")
    searches = [r for route, r in moved.traffic.answers if route == "GET /search"]
    searches.append(await moved.visitor.get("/search"))
    counted = [remaining(r) for r in searches]
    # One sliding-window log all along: each search counted once more, none forgotten.
    expected = list(range(moved.search_before - 1, moved.search_before - 1 - len(counted), -1))
    assert counted == expected
    assert set(moved.keys_before) <= set(durable_keys(moved.url))
