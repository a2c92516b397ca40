"""A lean, multiplexed RESP connection for the hot path (standalone and Unix-socket Valkey).

redis-py spends 60-110 µs of client CPU per command (checked out connection, command
packing in Python, response callbacks). On a cache hit or a rate-limit check that is most of
the request's cost. This connection instead:

- keeps a few long-lived connections and sends every caller's command on them at once
  (no pool checkout); replies come back in order and are matched FIFO, so a caller that is
  cancelled or times out leaves its reply to be read and dropped, never handed to the next
  caller (the redis-py #2624 class of bug cannot happen by construction);
- packs commands and parses replies in C (hiredis) and writes all the commands one event-loop
  tick produced in one ``write`` (auto-pipelining, as ioredis does);
- returns raw replies, which for the commands it serves (``FAST_COMMANDS``) are exactly what
  redis-py returns.

It never serves blocking commands, transactions or pub/sub: those stay on redis-py.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import ssl
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio import RedisCluster
from redis.crc import key_slot

from cachemw.valkey.url import ValkeyEndpoint

# Commands whose raw RESP2 reply is what redis-py returns too, so callers see one contract.
FAST_COMMANDS = frozenset({"GET", "HGET", "HMGET", "MGET", "EVALSHA", "EVAL"})

Arg = str | bytes | int | float


def _reply_error(error: hiredis.ReplyError) -> redis_errors.ResponseError:
    message = str(error)
    if message.startswith("NOSCRIPT"):
        return redis_errors.NoScriptError(message)
    return redis_errors.ResponseError(message)


class _RespProtocol(asyncio.Protocol):
    """One connection; replies are handed to waiters in the order commands were sent."""

    def __init__(self, stale_after: float) -> None:
        self._reader = hiredis.Reader()
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._sent_at: collections.deque[float] = collections.deque()
        self._buffer: list[bytes] = []
        self._flush_scheduled = False
        self._stale_after = stale_after
        self._last_reply_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's TCP transport (uvicorn[standard]'s loop) has the
        # asyncio.Transport interface without being a subclass of it.
        self.transport = cast(asyncio.Transport, transport)
        self._last_reply_at = self._loop.time()

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        self._last_reply_at = self._loop.time()
        waiters, sent_at = self._waiters, self._sent_at
        try:
            reply = reader.gets()
        except hiredis.ProtocolError as exc:
            self.abort(redis_errors.ConnectionError(f"protocol error: {exc}"))
            return
        while reply is not False:
            if not waiters:  # a reply nobody asked for: the stream is out of step
                self.abort(redis_errors.ConnectionError("unexpected reply"))
                return
            waiter = waiters.popleft()
            sent_at.popleft()
            if not waiter.done():  # a cancelled caller's reply is read and dropped
                if isinstance(reply, hiredis.ReplyError):
                    waiter.set_exception(_reply_error(reply))
                else:
                    waiter.set_result(reply)
            reply = reader.gets()

    def connection_lost(self, exc: Exception | None) -> None:
        self.abort(redis_errors.ConnectionError(f"connection lost: {exc or 'closed'}"))

    def abort(self, error: Exception) -> None:
        """Close the connection and fail every caller still waiting on it."""
        self.closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
        self._sent_at.clear()
        if self.transport is not None:
            self.transport.abort()

    def is_stale(self, now: float) -> bool:
        """The oldest unanswered command has waited too long and nothing came back since."""
        return bool(self._sent_at) and now - max(self._sent_at[0], self._last_reply_at) > (
            self._stale_after
        )

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise redis_errors.ConnectionError("connection closed")
        waiter: asyncio.Future[Any] = self._loop.create_future()
        self._waiters.append(waiter)
        self._sent_at.append(self._loop.time())
        self._buffer.append(packed)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return waiter

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._buffer and self.transport is not None and not self.closed:
            data = b"".join(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
            self._buffer.clear()
            self.transport.write(data)


class MultiplexedPool:
    """``size`` multiplexed connections to one standalone Valkey, opened lazily."""

    def __init__(
        self,
        endpoint: ValkeyEndpoint,
        *,
        client_name: str,
        connect_timeout: float,
        stale_after: float,
        size: int = 2,
    ) -> None:
        if endpoint.mode == "cluster":
            raise ValueError("the multiplexed fast path serves standalone Valkey only")
        self._endpoint = endpoint
        self._client_name = client_name
        self._connect_timeout = connect_timeout
        self._stale_after = stale_after
        self._slots: list[_RespProtocol | None] = [None] * size
        self._connecting: list[asyncio.Task[_RespProtocol] | None] = [None] * size
        self._next = 0
        self._closed = False

    async def execute(self, args: Sequence[Arg]) -> Any:
        protocol = self._ready_connection()
        if protocol is None:
            protocol = await self._connect_slot(self._next % len(self._slots))
        # hiredis's stub types the tuple as one element; any length is accepted.
        return await protocol.send(hiredis.pack_command(tuple(args)))  # type: ignore[arg-type]

    def _ready_connection(self) -> _RespProtocol | None:
        index = self._next = (self._next + 1) % len(self._slots)
        protocol = self._slots[index]
        if protocol is None or protocol.closed:
            return None
        if protocol.is_stale(asyncio.get_running_loop().time()):
            # Black-holed or wedged: drop it (its waiters fail) and open a fresh one.
            protocol.abort(redis_errors.ConnectionError("no reply within the budget"))
            return None
        return protocol

    async def _connect_slot(self, index: int) -> _RespProtocol:
        task = self._connecting[index]
        if task is None or task.done():
            # One connect per slot at a time; concurrent callers share it, and the task
            # stores its connection itself, so a caller that gives up leaks nothing.
            task = asyncio.ensure_future(self._open_slot(index))
            task.add_done_callback(_retrieve_exception)
            self._connecting[index] = task
        return await asyncio.shield(task)

    async def _open_slot(self, index: int) -> _RespProtocol:
        protocol = await self._open()
        if self._closed:
            protocol.abort(redis_errors.ConnectionError("pool closed"))
            raise redis_errors.ConnectionError("pool closed")
        previous, self._slots[index] = self._slots[index], protocol
        if previous is not None and previous is not protocol:
            previous.abort(redis_errors.ConnectionError("replaced"))
        return protocol

    async def _open(self) -> _RespProtocol:
        endpoint = self._endpoint
        loop = asyncio.get_running_loop()

        def factory() -> _RespProtocol:
            return _RespProtocol(self._stale_after)

        try:
            async with asyncio.timeout(self._connect_timeout):
                if endpoint.mode == "unix":
                    _, protocol = await loop.create_unix_connection(
                        factory, str(endpoint.unix_path)
                    )
                else:
                    host, port = endpoint.hosts[0]
                    _, protocol = await loop.create_connection(
                        factory, host, port, ssl=_ssl_context(endpoint)
                    )
                setup: list[tuple[Arg, ...]] = []
                if endpoint.password is not None:
                    setup.append(("AUTH", endpoint.username or "default", endpoint.password))
                if endpoint.db:
                    setup.append(("SELECT", endpoint.db))
                setup.append(("CLIENT", "SETNAME", self._client_name))
                try:
                    await asyncio.gather(
                        *(protocol.send(hiredis.pack_command(c)) for c in setup)  # type: ignore[arg-type]
                    )
                except BaseException as exc:
                    protocol.abort(redis_errors.ConnectionError(f"connection set-up failed: {exc}"))
                    raise
        except TimeoutError:
            raise redis_errors.TimeoutError("connect timed out") from None
        except OSError as exc:
            raise redis_errors.ConnectionError(f"connect failed: {exc}") from exc
        return protocol

    async def execute_asking(self, args: Sequence[Arg]) -> Any:
        """ASKING and the command back to back on one connection (an ASK redirect)."""
        protocol = self._ready_connection()
        if protocol is None:
            protocol = await self._connect_slot(self._next % len(self._slots))
        asking = protocol.send(hiredis.pack_command(("ASKING",)))
        reply = protocol.send(hiredis.pack_command(tuple(args)))  # type: ignore[arg-type]
        await asking
        return await reply

    async def aclose(self) -> None:
        self._closed = True
        for index, protocol in enumerate(self._slots):
            if protocol is not None:
                protocol.abort(redis_errors.ConnectionError("pool closed"))
            self._slots[index] = None
        pending = [task for task in self._connecting if task is not None and not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    # Callers who gave up are gone; mark the failure seen so asyncio does not warn.
    if not task.cancelled():
        task.exception()


def _ssl_context(endpoint: ValkeyEndpoint) -> ssl.SSLContext | None:
    if not endpoint.tls:
        return None
    context = ssl.create_default_context(cafile=endpoint.tls_ca_certs)
    if endpoint.tls_cert_reqs != "required":
        context.check_hostname = False
        context.verify_mode = (
            ssl.CERT_OPTIONAL if endpoint.tls_cert_reqs == "optional" else ssl.CERT_NONE
        )
    return context


# In a cluster only single-slot commands can take the fast path; MGET may span slots.
FAST_CLUSTER_COMMANDS = FAST_COMMANDS - {"MGET"}
_REDIRECTS = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")


class ClusterRouter:
    """The fast path for Valkey Cluster: one multiplexed pool per primary.

    The slot map is redis-py's (it owns discovery and refresh); a command takes the fast path
    when its slot's primary is known, and anything unusual (no map yet, a redirect, a keyless
    script) is handed to redis-py, which follows MOVED/ASK and refreshes the map for the
    next call.
    """

    def __init__(
        self,
        cluster: RedisCluster,
        endpoint: ValkeyEndpoint,
        *,
        client_name: str,
        connect_timeout: float,
        stale_after: float,
        size: int,
    ) -> None:
        self._cluster = cluster
        self._endpoint = endpoint
        self._new_pool = functools.partial(
            MultiplexedPool,
            client_name=client_name,
            connect_timeout=connect_timeout,
            stale_after=stale_after,
            size=size,
        )
        self._pools: dict[str, MultiplexedPool] = {}
        self._refresh: asyncio.Task[None] | None = None
        self._refreshed_at = -1e9

    async def execute(self, args: Sequence[Arg]) -> Any:
        key = _routing_key(args)
        pool = self._pool_for(key) if key is not None else None
        if pool is None:
            return await self._cluster.execute_command(*args)
        try:
            return await pool.execute(args)
        except redis_errors.ResponseError as exc:
            message = str(exc)
            if message.startswith("ASK "):
                # redis-py sends ASKING and the command on two pooled connections, which
                # loops on ASK; we keep them together on one multiplexed connection.
                target = self._pool_for_address(message.rsplit(" ", 1)[-1])
                if target is not None:
                    return await target.execute_asking(args)
            if not message.startswith(_REDIRECTS):
                raise
            return await self._cluster.execute_command(*args)
        except redis_errors.ConnectionError:
            # The node may have failed over: refresh the slot map in the background, at
            # most once a second, and let the caller's policy decide about this call.
            self._schedule_refresh()
            raise

    def _schedule_refresh(self) -> None:
        loop = asyncio.get_running_loop()
        if (self._refresh is None or self._refresh.done()) and (
            loop.time() - self._refreshed_at > 1.0
        ):
            self._refreshed_at = loop.time()
            self._refresh = loop.create_task(self._refresh_slot_map())

    async def _refresh_slot_map(self) -> None:
        with contextlib.suppress(redis_errors.RedisError, OSError):
            await self._cluster.nodes_manager.initialize()

    def _pool_for(self, key: Arg) -> MultiplexedPool | None:
        raw = key if isinstance(key, bytes) else str(key).encode()
        try:
            node = self._cluster.nodes_manager.get_node_from_slot(key_slot(raw))
        except (redis_errors.RedisError, KeyError):
            return None  # no slot map yet: redis-py discovers it on this call
        return self._pool_at(node.host, int(node.port))

    def _pool_for_address(self, address: str) -> MultiplexedPool | None:
        host, _, port = address.rpartition(":")
        return self._pool_at(host, int(port)) if host and port.isdigit() else None

    def _pool_at(self, host: str, port: int) -> MultiplexedPool:
        name = f"{host}:{port}"
        pool = self._pools.get(name)
        if pool is None:
            endpoint = replace(self._endpoint, mode="standalone", hosts=((host, port),))
            pool = self._pools[name] = self._new_pool(endpoint)
        return pool

    async def aclose(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()


def _routing_key(args: Sequence[Arg]) -> Arg | None:
    if args[0] in ("EVALSHA", "EVAL"):
        return args[3] if int(args[2]) > 0 else None
    return args[1] if len(args) > 1 else None
