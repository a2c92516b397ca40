"""ConcurrencyLimitMiddleware: in-flight caps per identity, leases released in every case."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cachemw.ratelimit import ConcurrencyLimitMiddleware
from cachemw.valkey import Valkey
from tests.ratelimit.conftest import client_for
from tests.ratelimit.sf_parser import check_ratelimit_policy


class SlowApp:
    """Holds every request until released, so requests are in flight together."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.entered += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})


def limited(valkey: Valkey, app: Any, **options: Any) -> ConcurrencyLimitMiddleware:
    settings: dict[str, Any] = {"name": "export", "max_in_flight": 2, **options}
    return ConcurrencyLimitMiddleware(app, valkey=valkey, **settings)


async def until(predicate: Any) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_requests_beyond_max_in_flight_are_rejected(valkey: Valkey) -> None:
    slow = SlowApp()
    async with client_for(limited(valkey, slow)) as client:
        held = [asyncio.create_task(client.get("/x")) for _ in range(2)]
        await until(lambda: slow.entered == 2)
        rejected = await client.get("/x")
        slow.release.set()
        done = await asyncio.gather(*held)
    assert rejected.status_code == 429
    assert json.loads(rejected.content)["violated-policies"] == ["export"]
    assert check_ratelimit_policy(rejected.headers["ratelimit-policy"]) == {
        "export": {"q": 2, "qu": "concurrency"}
    }
    assert [r.status_code for r in done] == [200, 200]


async def test_completed_requests_give_their_slot_back(valkey: Valkey) -> None:
    slow = SlowApp()
    slow.release.set()
    async with client_for(limited(valkey, slow, max_in_flight=1)) as client:
        statuses = [(await client.get("/x")).status_code for _ in range(5)]
    assert statuses == [200] * 5


async def test_cancelled_requests_give_their_slot_back(valkey: Valkey) -> None:
    slow = SlowApp()
    app = limited(valkey, slow, max_in_flight=1)
    async with client_for(app) as client:
        held = asyncio.create_task(client.get("/x"))
        await until(lambda: slow.entered == 1)
        held.cancel()  # the client went away mid-request
        with pytest.raises(asyncio.CancelledError):
            await held
        slow.release.set()
        await asyncio.sleep(0.05)  # the shielded release finishes
        assert (await client.get("/x")).status_code == 200


async def test_app_errors_give_their_slot_back(valkey: Valkey) -> None:
    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    app = limited(valkey, failing, max_in_flight=1)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    for _ in range(2):
        with pytest.raises(RuntimeError):
            await app(
                {"type": "http", "path": "/x", "client": ("1.2.3.4", 1), "headers": []},
                receive,
                send,
            )
    store = app.store
    lease = await store.acquire("export", "ip:1.2.3.4", max_in_flight=1, lease_seconds=5)
    assert lease.admitted


async def test_other_identities_have_their_own_slots(valkey: Valkey) -> None:
    slow = SlowApp()
    app = limited(valkey, slow, max_in_flight=1)
    async with client_for(app, ip="203.0.113.1") as a, client_for(app, ip="203.0.113.2") as b:
        held = asyncio.create_task(a.get("/x"))
        await until(lambda: slow.entered == 1)
        other = asyncio.create_task(b.get("/x"))
        await until(lambda: slow.entered == 2)
        slow.release.set()
        assert [r.status_code for r in await asyncio.gather(held, other)] == [200, 200]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "a b"}, "name"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"lease_seconds": 0}, "lease_seconds"),
        ({"path_prefixes": "/x"}, "path_prefixes"),
        ({"on_error": "maybe"}, "on_error"),
    ],
)
def test_invalid_option_error_names_it(
    valkey: Valkey, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        limited(valkey, SlowApp(), **options)


async def test_only_paths_under_the_prefixes_are_limited(valkey: Valkey) -> None:
    slow = SlowApp()
    app = limited(valkey, slow, max_in_flight=1, path_prefixes=("/export",))
    async with client_for(app) as client:
        held = asyncio.create_task(client.get("/export/1"))
        await until(lambda: slow.entered == 1)
        beside = asyncio.create_task(client.get("/exports"))
        await until(lambda: slow.entered == 2)
        below = await client.get("/export/2")
        slow.release.set()
        assert [r.status_code for r in await asyncio.gather(held, beside)] == [200, 200]
    assert below.status_code == 429
