"""Server-assisted client-side caching: invalidation messages for every key under a prefix.

One dedicated RESP3 connection per primary runs ``CLIENT TRACKING ON BCAST PREFIX <prefix>``;
the server then pushes ``invalidate [keys]`` for every write to a matching key, and
``invalidate nil`` on FLUSHALL/FLUSHDB. RESP3 push keeps tracking and its messages on one
connection, so the tracking can never outlive the channel that carries its messages (with
RESP2 ``REDIRECT`` the two may fail apart).

A listener is told, synchronously and before anything else can run:

* ``tracking_confirmed()`` once every primary's tracking is on (nothing before that moment
  was tracked: a near cache must start empty then);
* ``invalidated(keys)`` per message (``None``: everything may have changed);
* ``tracking_lost()`` as soon as any connection fails, stops answering the health check,
  is no longer a primary, or the Cluster's set of primaries changes (messages may have been
  missed from then on).

Hash-field expiry (HEXPIRE) sends no message when the field expires (checked on Valkey 9.1),
so a near cache must also bound each entry's life on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

import hiredis

from cachemw.valkey.client import Valkey
from cachemw.valkey.multiplexed import _ssl_context
from cachemw.valkey.url import ValkeyEndpoint

__all__ = ["InvalidationListener", "KeyTracking"]

logger = logging.getLogger("cachemw.valkey")
_INVALIDATE = b"invalidate"
_READ_SIZE = 65536


class InvalidationListener(Protocol):
    def tracking_confirmed(self) -> None: ...

    def tracking_lost(self) -> None: ...

    def invalidated(self, keys: Sequence[bytes] | None) -> None: ...


class TrackingLost(Exception):
    """A tracking connection failed or no longer tracks what it must."""


def _pack(args: Sequence[str | bytes | int]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class _TrackingConnection:
    """One RESP3 connection: replies matched FIFO to commands, pushes to the listener."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        listener: InvalidationListener,
        on_lost: Any,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._listener = listener
        self._on_lost = on_lost
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._closing = False
        self.host = ""
        self._task = asyncio.create_task(self._read_loop(), name="cachemw-key-tracking")

    @classmethod
    async def open(
        cls,
        endpoint: ValkeyEndpoint,
        address: tuple[str, int] | None,
        listener: InvalidationListener,
        on_lost: Any,
        *,
        client_name: str,
        timeout: float,
    ) -> _TrackingConnection:
        async with asyncio.timeout(timeout):
            if address is None:
                assert endpoint.unix_path is not None
                reader, writer = await asyncio.open_unix_connection(endpoint.unix_path)
            else:
                reader, writer = await asyncio.open_connection(
                    address[0], address[1], ssl=_ssl_context(endpoint)
                )
            connection = cls(reader, writer, listener, on_lost)
            connection.host = address[0] if address is not None else ""
            hello: list[str | bytes | int] = ["HELLO", 3]
            if endpoint.password is not None:
                hello += ["AUTH", endpoint.username or "default", endpoint.password]
            hello += ["SETNAME", client_name]
            try:
                await connection.command(hello)
            except BaseException:
                connection.close()
                raise
        return connection

    async def command(self, args: Sequence[str | bytes | int]) -> Any:
        if self._task.done():
            raise TrackingLost("tracking connection closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._writer.write(_pack(args))
        reply = await future
        if isinstance(reply, hiredis.ReplyError):
            raise TrackingLost(f"{args[0]!s} refused: {str(reply)[:80]}")
        return reply

    async def _read_loop(self) -> None:
        parser = hiredis.Reader()
        error: BaseException | None = None
        try:
            while True:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    break
                parser.feed(data)
                reply = parser.gets()
                while reply is not False:
                    self._dispatch(reply)
                    reply = parser.gets()
        except (OSError, hiredis.ProtocolError) as exc:
            error = exc
        finally:
            # Before anything else runs: from here on, messages may be missed.
            if not self._closing:
                self._on_lost()
            lost = TrackingLost(f"tracking connection lost: {type(error).__name__}")
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(lost)
            self._writer.close()

    def _dispatch(self, reply: Any) -> None:
        # hiredis hands RESP3 pushes over as lists; no reply to our commands starts with
        # "invalidate", so the first element tells a push from a reply.
        if isinstance(reply, list) and reply and reply[0] == _INVALIDATE:
            keys = reply[1] if len(reply) > 1 else None
            self._listener.invalidated(list(keys) if isinstance(keys, list) else None)
            return
        if self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(reply)

    @property
    def is_open(self) -> bool:
        return not self._task.done()

    def close(self) -> None:
        self._closing = True
        self._task.cancel()
        self._writer.close()


class KeyTracking:
    """Keeps ``CLIENT TRACKING ON BCAST PREFIX <prefix>`` live on every primary.

    ``start()`` runs in the background until :meth:`aclose`; a lost connection is reported
    at once and retried after ``retry_delay``. Every ``health_interval`` each connection must
    answer ``ROLE`` as a primary within ``health_timeout`` (a half-open connection would
    otherwise miss messages silently).
    """

    __slots__ = (
        "_closed",
        "_health_interval",
        "_health_timeout",
        "_listener",
        "_live",
        "_lost",
        "_prefix",
        "_retry_delay",
        "_task",
        "_valkey",
    )

    def __init__(
        self,
        valkey: Valkey,
        prefix: str,
        listener: InvalidationListener,
        *,
        health_interval: float = 0.25,
        health_timeout: float = 0.5,
        retry_delay: float = 0.5,
    ) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty: tracking every key is never wanted")
        self._valkey = valkey
        self._prefix = prefix
        self._listener = listener
        self._health_interval = health_interval
        self._health_timeout = health_timeout
        self._retry_delay = retry_delay
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None
        self._live = False
        self._closed = False

    @property
    def is_live(self) -> bool:
        """True while every primary's tracking is confirmed and no connection has failed."""
        return self._live

    def start(self) -> None:
        """Start tracking in the background (idempotent; needs a running event loop)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="cachemw-key-tracking")

    def _mark_lost(self) -> None:
        if self._lost is not None:
            self._lost.set()
        if self._live:
            self._live = False
            self._listener.tracking_lost()

    async def _run(self) -> None:
        failing = False
        while not self._closed:
            connections: list[_TrackingConnection] = []
            self._lost = asyncio.Event()
            try:
                primaries = await self._open_all(connections)
                if failing:
                    logger.info("key tracking restored")
                    failing = False
                await self._watch(connections, primaries)
            except (OSError, TimeoutError, TrackingLost, hiredis.ProtocolError) as exc:
                if not failing:
                    failing = True
                    logger.warning("key tracking lost (%s): near cache stays empty", exc)
            except Exception:
                # An unexpected reply shape: stay safe (lost) and keep trying, loudly once.
                if not failing:
                    failing = True
                    logger.exception("key tracking failed: near cache stays empty")
            finally:
                self._mark_lost()
                for connection in connections:
                    connection.close()
            await asyncio.sleep(self._retry_delay)

    async def _open_all(self, connections: list[_TrackingConnection]) -> set[tuple[str, int]]:
        endpoint = self._valkey.endpoint
        timeout = max(self._valkey.settings.connect_timeout, self._health_timeout)
        name = (endpoint.client_name or self._valkey.settings.client_name) + "-tracking"

        async def connect(address: tuple[str, int] | None) -> _TrackingConnection:
            connection = await _TrackingConnection.open(
                endpoint,
                address,
                self._listener,
                self._mark_lost,
                client_name=name,
                timeout=timeout,
            )
            connections.append(connection)
            return connection

        primaries: set[tuple[str, int]] = set()
        if endpoint.mode == "cluster":
            seed = await self._first_answering(connect, endpoint.hosts)
            async with asyncio.timeout(timeout):
                primaries = _primaries(await seed.command(["CLUSTER", "SLOTS"]), seed.host)
            connections.remove(seed)
            seed.close()
            if not primaries:
                raise TrackingLost("cluster has no primaries")
            targets: list[tuple[str, int] | None] = [*sorted(primaries)]
        elif endpoint.mode == "unix":
            targets = [None]
        else:
            targets = [endpoint.hosts[0]]
        for address in targets:
            connection = await connect(address)
            async with asyncio.timeout(timeout):
                await connection.command(
                    ["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self._prefix]
                )
        if any(not connection.is_open for connection in connections):
            raise TrackingLost("a tracking connection closed while starting")
        self._live = True
        self._listener.tracking_confirmed()
        return primaries

    async def _first_answering(
        self, connect: Any, hosts: Sequence[tuple[str, int]]
    ) -> _TrackingConnection:
        error: BaseException = TrackingLost("no cluster seed")
        for host in hosts:
            try:
                connection: _TrackingConnection = await connect(host)
            except (OSError, TimeoutError, TrackingLost) as exc:
                error = exc
                continue
            return connection
        raise error

    async def _watch(
        self, connections: list[_TrackingConnection], primaries: set[tuple[str, int]]
    ) -> None:
        lost = self._lost
        assert lost is not None
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._health_interval):
                    await lost.wait()
            if lost.is_set():
                break
            async with asyncio.timeout(self._health_timeout):
                roles = await asyncio.gather(
                    *(connection.command(["ROLE"]) for connection in connections)
                )
                if any(not role or role[0] != b"master" for role in roles):
                    raise TrackingLost("a tracked node is no longer a primary")
                if primaries:
                    seed = connections[0]
                    current = _primaries(await seed.command(["CLUSTER", "SLOTS"]), seed.host)
                    if current != primaries:
                        raise TrackingLost("the cluster's primaries changed")
        raise TrackingLost("tracking connection lost")

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._mark_lost()


def _primaries(slots: Any, asked: str) -> set[tuple[str, int]]:
    """The (host, port) of every primary in a ``CLUSTER SLOTS`` reply."""
    found: set[tuple[str, int]] = set()
    for entry in slots or ():
        node = entry[2]
        host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
        # An empty or "?" endpoint means "the address you asked me on" (CLUSTER SLOTS docs).
        found.add((host if host not in ("", "?") else asked, int(node[1])))
    return found
