"""Rate limits when Valkey misbehaves: policy per rule, never a 500, retries count once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Literal

import pytest
import redis

from cachemw.http.ratelimit import REDUCED_CAPACITY_TYPE, Rule
from cachemw.metrics import Metrics
from cachemw.ratelimit import ConcurrencyLimitMiddleware
from cachemw.ratelimit.store import RateLimitStore
from cachemw.valkey import Valkey
from cachemw.valkey.embedded import EmbeddedValkey
from tests.conftest import make_settings
from tests.ratelimit.conftest import client_for, limited_app, starlette_app
from tests.support.servers import all_keys

RULES = [
    Rule(name="open", limit="5/minute", routes=("/open",)),
    Rule(name="closed", limit="5/minute", routes=("/closed",), on_error="closed"),
]


class DropReplyProxy:
    """A loopback TCP proxy that can deliver a request and then lose its reply."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.drop_armed = False
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, replies: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if replies and self.drop_armed:
                    self.drop_armed = False
                    self.dropped += 1
                    break  # the server ran the command; the client never hears of it
                writer.write(data)
                await writer.drain()
        for w in self._writers:
            w.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers += [writer, up_writer]
        await asyncio.gather(
            self._pump(reader, up_writer, replies=False),
            self._pump(up_reader, writer, replies=True),
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[DropReplyProxy]:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        try:
            yield self
        finally:
            for w in self._writers:
                w.close()
            self._server.close()
            await self._server.wait_closed()


async def test_retry_after_a_dropped_reply_counts_once(private_server: EmbeddedValkey) -> None:
    async with DropReplyProxy(private_server.port).running() as proxy:
        valkey = Valkey(make_settings(proxy.url, retries=1))
        try:
            app = limited_app(valkey, rules=RULES)
            async with client_for(app, ip="203.0.113.1") as warm:
                assert (await warm.get("/open")).status_code == 200  # script loaded, connected
            proxy.drop_armed = True
            async with client_for(app, ip="203.0.113.2") as client:
                response = await client.get("/open")
            assert proxy.dropped == 1
            assert response.status_code == 200
            assert response.headers["ratelimit"] == '"open";r=4;t=60'
        finally:
            await valkey.aclose()
    sync = redis.Redis(port=private_server.port)
    try:
        sizes = sorted(sync.zcard(key) for key in all_keys(sync))
    finally:
        sync.close()
    assert sizes == [1, 1]  # the warm-up client's request and the retried one, once each


async def test_valkey_down_fail_open_route_serves_and_fail_closed_route_answers_503(
    private_server: EmbeddedValkey,
) -> None:
    metrics = Metrics()
    valkey = Valkey(make_settings(private_server.url, command_timeout=0.2))
    try:
        app = limited_app(valkey, rules=RULES, metrics=metrics)
        private_server.stop()
        async with client_for(app) as client:
            opened = await client.get("/open")
            closed = await client.get("/closed")
    finally:
        await valkey.aclose()
    assert opened.status_code == 200
    assert closed.status_code == 503
    assert closed.headers["content-type"] == "application/problem+json"
    assert closed.headers["cache-control"] == "no-store"
    assert int(closed.headers["retry-after"]) >= 1
    assert json.loads(closed.content)["type"] == REDUCED_CAPACITY_TYPE
    assert metrics.value("cachemw_ratelimit_fail_open_total", rule="open") == 1
    assert metrics.value("cachemw_ratelimit_errors_total", rule="closed") == 1


async def test_limits_apply_again_when_valkey_returns(private_server: EmbeddedValkey) -> None:
    valkey = Valkey(
        make_settings(private_server.url, command_timeout=0.2, breaker_reset_timeout=0.1)
    )
    try:
        app = limited_app(valkey, rules=RULES)
        async with client_for(app) as client:
            private_server.stop()
            assert (await client.get("/closed")).status_code == 503
            private_server.start()
            await asyncio.sleep(0.15)  # the breaker's reset timeout
            statuses = [(await client.get("/closed")).status_code for _ in range(7)]
    finally:
        await valkey.aclose()
    assert statuses[-2:] == [429, 429]
    assert statuses.count(200) == 5


async def test_a_server_error_reply_follows_the_failure_policy_not_a_500(
    private_server: EmbeddedValkey,
) -> None:
    valkey = Valkey(make_settings(private_server.url))
    sync = redis.Redis(port=private_server.port)
    try:
        app = limited_app(valkey, rules=RULES)
        async with client_for(app) as client:
            await client.get("/open")
            await client.get("/closed")
            for key in all_keys(sync):
                sync.delete(key)
                sync.set(key, b"not a sorted set")  # WRONGTYPE inside the script
            opened = await client.get("/open")
            closed = await client.get("/closed")
    finally:
        sync.close()
        await valkey.aclose()
    assert (opened.status_code, closed.status_code) == (200, 503)


# What ratelimit_sliding_log.lua runs inside the server for one admitted request.
SCRIPT_INNER_COMMANDS = ("time", "zremrangebyscore", "zcard", "zadd", "pexpire", "zrange")


async def test_an_allowed_request_costs_exactly_one_valkey_command(
    private_server: EmbeddedValkey,
) -> None:
    valkey = Valkey(make_settings(private_server.url))
    sync = redis.Redis(port=private_server.port)
    try:
        app = limited_app(valkey, rules=[Rule(name="open", limit="100/minute")])
        async with client_for(app) as client:
            for _ in range(5):
                await client.get("/open")  # connects and loads the script
            sync.config_resetstat()
            for _ in range(3):
                assert (await client.get("/open")).status_code == 200
        stats = sync.info("commandstats")
    finally:
        sync.close()
        await valkey.aclose()
    calls = {
        name.removeprefix("cmdstat_"): s["calls"]
        for name, s in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_config"))
    }
    # Any extra round trip would show up as another command or a higher count.
    assert calls == dict.fromkeys(("evalsha", *SCRIPT_INNER_COMMANDS), 3)


async def test_shadow_rule_on_a_failing_valkey_never_answers_503(
    private_server: EmbeddedValkey,
) -> None:
    rule = Rule(name="closed", limit="1/minute", on_error="closed", shadow=True)
    valkey = Valkey(make_settings(private_server.url, command_timeout=0.2))
    try:
        app = limited_app(valkey, rules=[rule])
        private_server.stop()
        async with client_for(app) as client:
            assert (await client.get("/free")).status_code == 200
    finally:
        await valkey.aclose()


async def test_store_replay_of_a_lost_reply_is_idempotent(private_server: EmbeddedValkey) -> None:
    valkey = Valkey(make_settings(private_server.url))
    try:
        store = RateLimitStore(valkey)
        bucket = store.bucket(Rule(name="t", limit="1/minute"))
        assert (await store.hit(bucket, "ip:1", request_id="same")).admitted
        assert (await store.hit(bucket, "ip:1", request_id="same")).admitted
        assert not (await store.hit(bucket, "ip:1")).admitted
    finally:
        await valkey.aclose()


@pytest.mark.parametrize(("on_error", "status"), [("open", 200), ("closed", 503)])
async def test_concurrency_limit_follows_its_failure_policy(
    private_server: EmbeddedValkey, on_error: Literal["open", "closed"], status: int
) -> None:
    valkey = Valkey(make_settings(private_server.url, command_timeout=0.2))
    try:
        app = ConcurrencyLimitMiddleware(
            starlette_app(), valkey=valkey, name="c", max_in_flight=1, on_error=on_error
        )
        private_server.stop()
        async with client_for(app) as client:
            assert (await client.get("/free")).status_code == status
    finally:
        await valkey.aclose()
