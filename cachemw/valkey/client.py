"""The one place in cachemw that creates Valkey connections and runs commands.

Every call goes through :meth:`Valkey._call`, which owns the policy: the circuit breaker, one
time budget per call, bounded jittered retries for idempotent operations only, and the mapping
of client errors to :class:`ValkeyUnavailable` / :class:`ValkeyCommandError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode, ClusterPipeline
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cachemw.valkey.breaker import BreakerState, CircuitBreaker
from cachemw.valkey.errors import (
    BreakerOpen,
    ValkeyCommandError,
    ValkeyError,
    ValkeyUnavailable,
)
from cachemw.valkey.keyspace import Keyspace
from cachemw.valkey.multiplexed import (
    FAST_CLUSTER_COMMANDS,
    FAST_COMMANDS,
    ClusterRouter,
    MultiplexedPool,
)
from cachemw.valkey.replication import (
    fence_key,
    fenced_wait_on_cluster,
    fenced_wait_on_standalone,
)
from cachemw.valkey.scripts import Script
from cachemw.valkey.settings import ValkeySettings
from cachemw.valkey.url import ValkeyEndpoint, parse_valkey_url

logger = logging.getLogger("cachemw.valkey")

T = TypeVar("T")
Arg = str | bytes | int | float

# Errors after which the same call may be sent again if it is idempotent.
_RETRYABLE: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.TryAgainError,
    ConnectionError,
    OSError,
)
# Errors that mean "Valkey cannot do its job right now" and count against the breaker.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    *_RETRYABLE,
    TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    redis_errors.ClusterDownError,
    redis_errors.MaxConnectionsError,
)
_UNAVAILABLE_REPLY_PREFIXES = (
    "READONLY",
    "LOADING",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "TRYAGAIN",
    "BUSY",
    "NOREPLICAS",
    "NOAUTH",  # misconfigured credentials: the features cannot use Valkey at all
    "WRONGPASS",
)
# OOM: the server is up and answering reads, so the breaker stays closed (reads keep being
# served) while each failed write reports unavailability to its feature.
_BREAKER_NEUTRAL_REPLY_PREFIXES = ("OOM",)


def _error_kind(exc: BaseException) -> str:
    return type(exc).__name__


class Valkey:
    """An asyncio Valkey client (standalone or Cluster) with cachemw's failure policy.

    Construction does no I/O: connections open on first use, so a Valkey that is down at
    start-up makes features follow their failure policy instead of crashing the app.
    """

    def __init__(self, settings: ValkeySettings | None = None, **overrides: Any) -> None:
        settings = settings or ValkeySettings()
        if overrides:
            settings = replace(settings, **overrides)
        self.settings = settings
        self.endpoint: ValkeyEndpoint = parse_valkey_url(settings.url)
        self.keyspace = Keyspace(settings.key_prefix)
        self.breaker = CircuitBreaker(
            failure_threshold=settings.breaker_failure_threshold,
            reset_timeout=settings.breaker_reset_timeout,
        )
        self._client: Redis | RedisCluster = self._build_client()
        # redis-py's cluster nodes raise MaxConnectionsError when full; a semaphore makes
        # callers wait instead (bounded by the call budget), like the standalone pool does.
        self._cluster_slots = (
            asyncio.Semaphore(settings.max_connections) if self.is_cluster else None
        )
        self._logged_error: str | None = None
        self._cluster_init_lock = asyncio.Lock()
        self._slot_map_reads = 0  # slot map re-reads done for SlotNotCoveredError
        self._state_features: set[str] = set()
        # Hot-path reads and scripts skip redis-py (see multiplexed.py).
        self._multiplexed: MultiplexedPool | ClusterRouter | None = None
        self._fast_commands: frozenset[str] = frozenset()
        if settings.multiplexed_connections:
            options: dict[str, Any] = {
                "client_name": self.endpoint.client_name or settings.client_name,
                "connect_timeout": settings.connect_timeout,
                "stale_after": max(0.5, 4 * settings.command_timeout),
                "size": settings.multiplexed_connections,
            }
            if isinstance(self._client, RedisCluster):
                self._multiplexed = ClusterRouter(self._client, self.endpoint, **options)
                self._fast_commands = FAST_CLUSTER_COMMANDS
            else:
                self._multiplexed = MultiplexedPool(self.endpoint, **options)
                self._fast_commands = FAST_COMMANDS

    @classmethod
    def from_url(cls, url: str, **settings: Any) -> Valkey:
        return cls(ValkeySettings(url=url, **settings))

    @property
    def is_cluster(self) -> bool:
        return self.endpoint.mode == "cluster"

    @property
    def client(self) -> Redis | RedisCluster:
        """The underlying redis.asyncio client, for what the Valkey layer itself builds on
        (pub/sub, tracking connections). Features never call it directly."""
        return self._client

    def _build_client(self) -> Redis | RedisCluster:
        s, ep = self.settings, self.endpoint
        # No retries inside redis-py: _call decides what may be retried, within one budget.
        no_retry = Retry(NoBackoff(), 0)
        common: dict[str, Any] = {
            "username": ep.username,
            "password": ep.password,
            "socket_timeout": s.command_timeout * (s.retries + 1),
            "socket_connect_timeout": s.connect_timeout,
            "client_name": ep.client_name or s.client_name,
            "health_check_interval": s.health_check_interval,
            "retry": no_retry,
        }
        if ep.mode == "cluster":
            return RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in ep.hosts],
                max_connections=s.max_connections,
                require_full_coverage=False,
                # The default (5) closes the whole client on every 5th MOVED, cutting off
                # other tasks' calls mid-flight; MOVED alone updates the slot map.
                reinitialize_steps=0,
                ssl=ep.tls,
                ssl_cert_reqs=ep.tls_cert_reqs,
                ssl_ca_certs=ep.tls_ca_certs,
                **common,
            )
        conn_kwargs: dict[str, Any] = {**common, "db": ep.db}
        conn_class: type[Connection] | type[UnixDomainSocketConnection]
        if ep.mode == "unix":
            conn_class = UnixDomainSocketConnection
            conn_kwargs["path"] = ep.unix_path
        else:
            host, port = ep.hosts[0]
            conn_kwargs.update(host=host, port=port)
            conn_class = Connection
            if ep.tls:
                conn_class = SSLConnection
                conn_kwargs.update(ssl_cert_reqs=ep.tls_cert_reqs, ssl_ca_certs=ep.tls_ca_certs)
        pool = BlockingConnectionPool(
            connection_class=conn_class,
            max_connections=s.max_connections,
            timeout=None,  # wait for a connection; the call budget bounds the wait
            **conn_kwargs,
        )
        return Redis.from_pool(pool)

    # -- the policy every call goes through -------------------------------------------

    async def _call(
        self, operation: Callable[[], Awaitable[T]], *, idempotent: bool, timeout: float | None
    ) -> T:
        breaker = self.breaker
        if not breaker.allow():
            raise BreakerOpen("Valkey circuit breaker is open")
        settings = self.settings
        budget = settings.command_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        attempt = 0
        slot_map_read = False
        try:
            async with asyncio.timeout_at(loop.time() + budget):
                if self._cluster_slots is not None and getattr(self._client, "_initialize", False):
                    await self._discover_cluster()
                while True:
                    try:
                        if self._cluster_slots is None:
                            result = await operation()
                        else:
                            async with self._cluster_slots:
                                result = await operation()
                        break
                    except redis_errors.SlotNotCoveredError:
                        # Nothing was sent: the slot map has no node for the key. It was
                        # read while the slot was unassigned (CLUSTERDOWN), and nothing
                        # else would read it again. Read it now and try once more, for
                        # any command, since this one never reached a server.
                        if slot_map_read:
                            raise
                        slot_map_read = True
                        await self._read_slot_map()
                    except _RETRYABLE:
                        if not idempotent or attempt >= settings.retries:
                            raise
                        attempt += 1
                        cap = min(
                            settings.retry_backoff_cap, settings.retry_backoff_base * 2**attempt
                        )
                        await asyncio.sleep(random.uniform(0, cap))  # noqa: S311 - jitter
        except asyncio.CancelledError:
            breaker.release_probe()
            raise
        except _UNAVAILABLE as exc:
            self._record_failure(exc)
            raise ValkeyUnavailable(f"Valkey unavailable: {_error_kind(exc)}") from exc
        except redis_errors.OutOfMemoryError as exc:
            # The server is up and answering reads: the breaker stays closed.
            breaker.record_success()
            self._log_once("OOM", str(exc)[:200])
            raise ValkeyUnavailable(f"Valkey refused the write (OOM): {str(exc)[:80]}") from exc
        except redis_errors.ResponseError as exc:
            message = str(exc)
            if message.startswith(_UNAVAILABLE_REPLY_PREFIXES):
                self._record_failure(exc)
                raise ValkeyUnavailable(f"Valkey unavailable: {message[:80]}") from exc
            breaker.record_success()  # the server answered; the command itself failed
            if message.startswith(_BREAKER_NEUTRAL_REPLY_PREFIXES):
                self._log_once(message.split(" ", 1)[0], message)
                raise ValkeyUnavailable(f"Valkey refused the write: {message[:80]}") from exc
            raise ValkeyCommandError(message[:200]) from exc
        except redis_errors.RedisClusterException as exc:
            if str(exc).startswith("No way to dispatch"):
                raise ValkeyCommandError(str(exc)[:200]) from exc  # a keyless command: our bug
            self._record_failure(exc)
            raise ValkeyUnavailable(f"Valkey unavailable: {_error_kind(exc)}") from exc
        except redis_errors.RedisError as exc:
            self._record_failure(exc)
            raise ValkeyUnavailable(f"Valkey unavailable: {_error_kind(exc)}") from exc
        except Exception as exc:
            # redis-py's cluster client can fail in-flight calls with raw errors (e.g.
            # AttributeError on a connection it recycled while re-reading the topology);
            # a feature must see a ValkeyError it has a policy for, never a 500.
            self._record_failure(exc)
            raise ValkeyUnavailable(f"Valkey client error: {_error_kind(exc)}") from exc
        breaker.record_success()
        if self._logged_error is not None:
            logger.info("Valkey calls succeed again after %s", self._logged_error)
            self._logged_error = None
        return result

    async def _discover_cluster(self) -> None:
        # redis-py fails calls that race its first topology discovery (or a re-discovery
        # after a node error): let one caller discover while the others wait for it.
        async with self._cluster_init_lock:
            if getattr(self._client, "_initialize", False):
                await self._client.initialize()

    async def _read_slot_map(self) -> None:
        # Callers that hit the same uncovered slot share one re-read.
        reads = self._slot_map_reads
        async with self._cluster_init_lock:
            if self._slot_map_reads == reads:
                assert isinstance(self._client, RedisCluster)
                await self._client.nodes_manager.initialize()
                self._slot_map_reads += 1

    def _record_failure(self, exc: BaseException) -> None:
        self.breaker.record_failure()
        self._log_once(_error_kind(exc), str(exc)[:200])

    def _log_once(self, kind: str, detail: str) -> None:
        # One line per kind of trouble, not per request; a success re-arms it.
        if self._logged_error != kind:
            self._logged_error = kind
            logger.warning("Valkey call failed (%s): %s", kind, detail)

    # -- commands ------------------------------------------------------------------------

    async def execute(
        self, *args: Arg, idempotent: bool = True, timeout: float | None = None
    ) -> Any:
        """Run one command, e.g. ``await valkey.execute("GET", key)``."""
        multiplexed = self._multiplexed
        if multiplexed is not None and args[0] in self._fast_commands:
            return await self._call(
                lambda: multiplexed.execute(args), idempotent=idempotent, timeout=timeout
            )
        client = self._client
        return await self._call(
            lambda: client.execute_command(*args), idempotent=idempotent, timeout=timeout
        )

    async def run_script(
        self,
        script: Script,
        keys: Sequence[str | bytes],
        args: Sequence[Arg] = (),
        *,
        idempotent: bool,
        timeout: float | None = None,
    ) -> Any:
        """Run a Lua script: EVALSHA, falling back to EVAL when the node lacks it."""
        numkeys = len(keys)
        multiplexed = self._multiplexed
        run: Callable[..., Awaitable[Any]]
        if multiplexed is not None:

            def run(*command: Arg) -> Awaitable[Any]:
                return multiplexed.execute(command)  # awaited by the caller: no extra frame

        else:
            run = self._client.execute_command

        async def operation() -> Any:
            try:
                return await run("EVALSHA", script.sha, numkeys, *keys, *args)
            except redis_errors.NoScriptError:
                # After SCRIPT FLUSH, a restart or a failover; EVAL also caches it again.
                return await run("EVAL", script.source, numkeys, *keys, *args)

        return await self._call(operation, idempotent=idempotent, timeout=timeout)

    async def pipeline(
        self,
        commands: Sequence[Sequence[Arg]],
        *,
        transaction: bool = False,
        idempotent: bool = False,
        timeout: float | None = None,
    ) -> list[Any]:
        """Send several commands in one round trip. In Cluster, keep them to one slot."""
        client = self._client

        async def operation() -> list[Any]:
            pipe = client.pipeline(transaction=transaction)
            try:
                for command in commands:
                    pipe.execute_command(*command)
                return await pipe.execute()
            finally:
                if isinstance(pipe, ClusterPipeline):
                    # redis-py's ClusterPipeline and its execution strategy refer to each
                    # other: unlinked, reference counting frees both now instead of leaving
                    # a cycle per call for the garbage collector.
                    del pipe._execution_strategy

        return await self._call(operation, idempotent=idempotent, timeout=timeout)

    async def wait_for_replicas(
        self, key: str, replicas: int, *, timeout: float | None = None
    ) -> int:
        """How many replicas of ``key``'s primary hold every write that primary acknowledged
        before this call, waiting for up to ``replicas`` of them within the budget (a fenced
        ``WAIT``, see :mod:`cachemw.valkey.replication`). Safe to retry. ``key`` must carry a
        hash tag (every :class:`Keyspace` key does)."""
        fence = fence_key(self.keyspace.prefix, key)
        budget = self.settings.command_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        client = self._client

        async def operation() -> int:
            if isinstance(client, RedisCluster):
                return await fenced_wait_on_cluster(
                    client, key, fence, replicas, deadline, discover=self._discover_cluster
                )
            return await fenced_wait_on_standalone(client, fence, replicas, deadline)

        return await self._call(operation, idempotent=True, timeout=budget)

    async def ping(self, *, timeout: float | None = None) -> bool:
        """True when Valkey answers within the budget; never raises."""
        try:
            return bool(await self.execute("PING", timeout=timeout))
        except ValkeyUnavailable:
            return False

    async def scan(self, match: str, *, count: int = 500) -> AsyncIterator[bytes]:
        """Every key matching ``match`` on every primary (SCAN, never KEYS)."""
        if isinstance(self._client, RedisCluster):
            nodes: list[Any] = self._client.get_primaries()
            if not nodes:
                await self.execute("PING")  # triggers topology discovery
                nodes = self._client.get_primaries()
        else:
            nodes = [None]
        client = self._client
        for node in nodes:
            target: dict[str, Any] = {} if node is None else {"target_nodes": node}
            cursor: int | bytes = 0
            while True:

                def scan_page(cursor: int | bytes = cursor, target: dict[str, Any] = target) -> Any:
                    return client.execute_command(
                        "SCAN", cursor, "MATCH", match, "COUNT", count, **target
                    )

                reply = await self._call(
                    scan_page, idempotent=True, timeout=max(self.settings.command_timeout, 1.0)
                )
                cursor, keys = reply
                if isinstance(cursor, dict):  # the cluster client answers ({node: cursor}, keys)
                    (cursor,) = cursor.values()
                for key in keys:
                    yield key
                if int(cursor) == 0:
                    break

    async def subscribe(
        self, channel: str, *, on_subscribed: Callable[[], None] | None = None
    ) -> AsyncIterator[bytes]:
        """The payloads published on ``channel``, on a dedicated connection.

        ``on_subscribed`` runs once the subscription is confirmed. A lost subscription
        raises :class:`ValkeyUnavailable`; the caller decides when to subscribe again. In
        Cluster, PUBLISH reaches every node, so one connection to any node hears it all; it is
        built apart from the pools so a subscribed connection never serves a command.
        """
        subscriber: Redis | None = None
        pubsub: Any = None
        try:
            client = self._client
            if isinstance(client, RedisCluster):
                if not client.get_nodes():
                    await self.execute("PING")  # topology discovery
                node = client.get_nodes()[0]
                pool = ConnectionPool(
                    connection_class=node.connection_class,
                    max_connections=1,
                    **node.connection_kwargs,
                )
                subscriber = Redis.from_pool(pool)
                pubsub = subscriber.pubsub()
            else:
                pubsub = client.pubsub()
            await pubsub.subscribe(channel)
            if on_subscribed is not None:
                on_subscribed()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is not None and message.get("type") == "message":
                    yield bytes(message["data"])
        except (redis_errors.RedisError, OSError) as exc:
            raise ValkeyUnavailable(f"subscription lost: {_error_kind(exc)}") from exc
        finally:
            with contextlib.suppress(redis_errors.RedisError, OSError):
                if pubsub is not None:
                    await pubsub.aclose()
                if subscriber is not None:
                    await subscriber.aclose()

    def holds_state(self, feature: str) -> None:
        """Note that ``feature`` keeps state here that must not be evicted (sessions, limits).

        :meth:`lifespan` then warns once at start-up if this Valkey evicts keys under memory
        pressure (``allkeys-*``): there, a flood of cache entries could evict sessions.
        """
        self._state_features.add(feature)

    async def eviction_policy(self) -> str | None:
        """The server's ``maxmemory-policy`` (the first primary's in Cluster), or None."""
        try:
            reply = await self.execute(
                "CONFIG GET", "maxmemory-policy", timeout=max(self.settings.command_timeout, 1.0)
            )
        except ValkeyError:
            return None
        if isinstance(reply, dict):
            values = list(reply.values())
            if values and isinstance(values[0], dict | list):  # {node: reply} in Cluster
                reply = values[0]
        if isinstance(reply, dict):
            value = next(iter(reply.values()), None)
        elif isinstance(reply, list) and len(reply) == 2:
            value = reply[1]
        else:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def warn_if_state_is_evictable(self) -> bool:
        """Log one warning when state-holding features share an evicting Valkey."""
        if not self._state_features:
            return False
        policy = await self.eviction_policy()
        if policy is None or not policy.startswith("allkeys-"):
            return False
        logger.warning(
            "Valkey at %s holds %s but evicts any key under memory pressure "
            "(maxmemory-policy=%s): cache entries can push them out. Use a separate Valkey "
            "(or database) with noeviction or volatile-* for them.",
            self.endpoint.redacted(),
            " and ".join(sorted(self._state_features)),
            policy,
        )
        return True

    @property
    def breaker_state(self) -> BreakerState:
        return self.breaker.state

    # -- lifecycle -----------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._multiplexed is not None:
            await self._multiplexed.aclose()
        await self._client.aclose()
        if isinstance(self._client, RedisCluster):
            # RedisCluster.aclose() does nothing while a re-discovery is pending (after any
            # node error), which would leave every node connection open.
            await self._client.nodes_manager.aclose()
            await self._client.nodes_manager.aclose("startup_nodes")

    async def __aenter__(self) -> Valkey:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """``Starlette(lifespan=valkey.lifespan)``: checks Valkey at start, closes at stop.

        A Valkey that does not answer at start-up is logged, not fatal: features follow
        their failure policy until it comes back.
        """
        if not await self.ping(timeout=max(self.settings.connect_timeout, 1.0)):
            logger.warning("Valkey at %s did not answer at start-up", self.endpoint.redacted())
        else:
            await self.warn_if_state_is_evictable()
        try:
            yield
        finally:
            await self.aclose()
