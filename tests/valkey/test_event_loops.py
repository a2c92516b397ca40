"""cachemw on uvloop, the event loop `uvicorn[standard]` runs by default.

uvloop's transports implement asyncio's interfaces without subclassing them; a type check
in the hot-path connection once failed every Valkey call there (cache open, sessions 503).
These tests run the Valkey layer and the full stack on a uvloop loop of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import uvloop

from cachemw.valkey import Script, Valkey
from tests.cache.test_near_cache import eventually, near_harness, near_of, warm
from tests.conftest import make_settings
from tests.hardening.stack import build_stack, visiting

ECHO = Script("test_uvloop_echo", source="return ARGV[1]")


def run_on_uvloop(main: Callable[[], Awaitable[None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert type(runner.get_loop()).__module__.startswith("uvloop")
        runner.run(main())


def test_valkey_calls_work_on_uvloop(valkey_url: str) -> None:
    async def main() -> None:
        async with Valkey(make_settings(valkey_url)) as valkey:
            key = valkey.keyspace.key_for("uvloop", "k")
            await valkey.execute("SET", key, "v", idempotent=False)
            assert await valkey.execute("GET", key) == b"v"  # the multiplexed fast path
            replies = await asyncio.gather(
                *(valkey.run_script(ECHO, [key], [str(i)], idempotent=True) for i in range(50))
            )
            assert replies == [str(i).encode() for i in range(50)]
            assert await valkey.pipeline([("GET", key), ("STRLEN", key)]) == [b"v", 1]

    run_on_uvloop(main)


def test_every_feature_serves_on_uvloop(valkey_url: str) -> None:
    async def main() -> None:
        valkey = Valkey(make_settings(valkey_url))
        async with valkey, visiting(build_stack(valkey)) as visitor:
            assert (await visitor.post("/cart/apple")).status_code == 200
            basket = await visitor.get("/basket")
            assert basket.json()["items"] == ["apple"]
            first = await visitor.get("/catalogue/teapot", with_cookie=False)
            second = await visitor.get("/catalogue/teapot", with_cookie=False)
            assert "stored" in first.headers["cache-status"]
            assert second.headers["cache-status"].startswith("cachemw; hit")
            search = await visitor.get("/search")
            assert search.status_code == 200
            assert "ratelimit" in search.headers  # checked against Valkey, not failed open

    run_on_uvloop(main)


def test_near_cache_tracking_goes_live_and_invalidates_on_uvloop(valkey_url: str) -> None:
    async def main() -> None:
        async with near_harness(valkey_url) as h:  # waits until key tracking is live
            await warm(h, ["/"])
            near = near_of(h)
            async with Valkey(make_settings(valkey_url)) as other:  # another process's write
                stored = [key async for key in other.scan(other.keyspace.pattern("cache"))]
                assert stored
                for key in stored:
                    await other.execute("UNLINK", key, idempotent=False)
            await eventually(lambda: len(near) == 0)

    run_on_uvloop(main)
