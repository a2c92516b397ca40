"""``FunctionCache.cached``: cache-aside for async functions and FastAPI dependencies.

    functions = FunctionCache(valkey)

    @functions.cached(ttl=60, key=("product_id",), tags=lambda product_id: [f"p{product_id}"])
    async def load_product(product_id: int, db: Database) -> Product: ...

Results are msgspec-encoded (msgpack) and decoded into the function's declared return type,
so every caller gets its own typed value and nothing is pickled. Entries live in the same
Valkey layout as HTTP responses and share its machinery: one HMGET per hit, single-flight
fills (in-process and across processes, fenced), XFetch early refresh, tags that
:class:`~cachemw.cache.invalidation.CacheInvalidator` can invalidate.

Identity guard: a cached result is shared by every caller whose key arguments are equal. A
function with a parameter that looks like the caller's identity (``user``, ``session``,
``request``, a Starlette ``Request``, ... see :data:`IDENTITY_PARAMETERS`) must put it in
``key`` or say it does not matter with ``ignores_identity=("user",)``; otherwise defining
the cached function raises ``ValueError``, before it can leak one user's data to another.
"""

from __future__ import annotations

import functools
import inspect
import math
import random
import time
import typing
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import msgspec

from cachemw.cache.coalescing import FillCoordinator, Flight
from cachemw.cache.entry import CachedResponse, EntryCodec
from cachemw.cache.store import CacheStore
from cachemw.http.keys import variant_key
from cachemw.metrics import Metrics
from cachemw.valkey import Valkey, ValkeyError, digest

__all__ = ["IDENTITY_PARAMETERS", "FunctionCache", "cached"]

P = ParamSpec("P")
R = TypeVar("R")

IDENTITY_PARAMETERS = frozenset(
    (
        "account", "auth", "authorization", "credentials", "current_user", "identity",
        "me", "principal", "request", "session", "token", "user", "user_id", "viewer",
    )
)  # fmt: skip
_IDENTITY_TYPES = frozenset(("Request", "HTTPConnection", "WebSocket", "Session"))


class FunctionCache:
    """The Valkey-backed store shared by every function decorated through it."""

    def __init__(
        self,
        valkey: Valkey,
        *,
        metrics: Metrics | None = None,
        lock_ttl: float = 10.0,
        coalesce_wait: float = 5.0,
        xfetch_beta: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < lock_ttl <= 600:
            raise ValueError(f"lock_ttl must be in (0, 600] seconds, got {lock_ttl!r}")
        if not 0 <= coalesce_wait <= 600:
            raise ValueError(f"coalesce_wait must be in [0, 600] seconds, got {coalesce_wait!r}")
        if not 0 <= xfetch_beta <= 100:
            raise ValueError(f"xfetch_beta must be in [0, 100], got {xfetch_beta!r}")
        self.store = CacheStore(valkey)
        self.codec = EntryCodec()
        self.coordinator = FillCoordinator(self.store, coalesce_wait=coalesce_wait)
        self.metrics = metrics
        self.clock = clock
        self.lock_ttl_ms = int(lock_ttl * 1000)
        self.xfetch_beta = xfetch_beta
        self.variant = variant_key((), []).decode("ascii")
        self._key_encoder = msgspec.msgpack.Encoder(order="deterministic")

    def cached(
        self,
        *,
        ttl: float,
        key: Iterable[str] = (),
        tags: Iterable[str] | Callable[..., Iterable[str]] = (),
        ignores_identity: Iterable[str] = (),
        version: str = "1",
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Decorate an async function; ``key`` names the parameters results depend on."""
        if not 0 < ttl <= 2147483648:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
        key_names = tuple(key)
        ignored = frozenset(ignores_identity)

        def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
            return _CachedFunction(
                self, function, ttl=ttl, key=key_names, tags=tags, ignored=ignored, version=version
            ).wrapper()

        return decorate

    def encode_key(self, parts: list[Any]) -> bytes:
        return self._key_encoder.encode(parts)

    def count(self, event: str, **labels: str) -> None:
        if self.metrics is not None:
            self.metrics.incr(f"cachemw_function_cache_{event}_total", 1, **labels)

    async def aclose(self) -> None:
        """Stop the wake-up subscription of cross-process waits."""
        await self.coordinator.aclose()


def cached(
    function_cache: FunctionCache, **options: Any
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """``@cached(functions, ttl=60, key=("id",))``: same as ``functions.cached(...)``."""
    return function_cache.cached(**options)


def _check_identity(
    function: Callable[..., Any],
    signature: inspect.Signature,
    key: tuple[str, ...],
    ignored: frozenset[str],
) -> None:
    for name, parameter in signature.parameters.items():
        if name in key or name in ignored:
            continue
        annotation = parameter.annotation
        type_name = getattr(annotation, "__name__", str(annotation))
        if name.lower() in IDENTITY_PARAMETERS or type_name in _IDENTITY_TYPES:
            raise ValueError(
                f"cached({function.__qualname__}): parameter {name!r} looks like the caller's "
                f"identity but is not in key={key!r}; add it to key (one entry per caller) or "
                f"to ignores_identity=({name!r},) if the result is the same for every caller"
            )


class _CachedFunction:
    """One decorated function: its key derivation, typed decoder and fill logic."""

    def __init__(
        self,
        cache: FunctionCache,
        function: Callable[..., Awaitable[Any]],
        *,
        ttl: float,
        key: tuple[str, ...],
        tags: Iterable[str] | Callable[..., Iterable[str]],
        ignored: frozenset[str],
        version: str,
    ) -> None:
        if not inspect.iscoroutinefunction(function):
            raise ValueError(f"cached() needs an async function, got {function!r}")
        self.signature = inspect.signature(function)
        unknown = [name for name in key if name not in self.signature.parameters]
        if unknown:
            raise ValueError(
                f"cached({function.__qualname__}): key names {unknown!r} are not parameters; "
                f"allowed: {tuple(self.signature.parameters)!r}"
            )
        _check_identity(function, self.signature, key, ignored)
        hints = typing.get_type_hints(function)
        if "return" not in hints:
            raise ValueError(
                f"cached({function.__qualname__}) needs a return annotation to decode results"
            )
        try:
            self.decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(hints["return"])
        except TypeError as exc:
            raise ValueError(
                f"cached({function.__qualname__}): return type is not msgspec-serialisable: {exc}"
            ) from None
        self.encoder = msgspec.msgpack.Encoder()
        self.cache = cache
        self.function = function
        self.ttl = ttl
        self.key = key
        self.tags = tags
        self.identity = f"{function.__module__}.{function.__qualname__}:{version}"
        self.cache_control = b"max-age=%d" % math.ceil(ttl)

    def wrapper(self) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(self.function)
        async def cached_call(*args: Any, **kwargs: Any) -> Any:
            return await self.call(args, kwargs)

        return cached_call

    async def call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cache = self.cache
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = {name: bound.arguments[name] for name in self.key}
        primary_key = digest(cache.encode_key([self.identity, list(arguments.values())]))
        # Concurrent calls with equal keys share one lookup and at most one call (in-process
        # single-flight, before any Valkey round trip).
        flight_key = cache.store.lock_key(primary_key, cache.variant)
        current = cache.coordinator.current_flight(flight_key)
        if current is not None:
            shared = await cache.coordinator.follow(current)
            if shared is not None and cache.clock() - shared.response_time < self.ttl:
                cache.count("coalesced" if current.filled else "hit")
                return self.decoder.decode(shared.body)
            return await self.function(*args, **kwargs)
        flight = cache.coordinator.lead(flight_key)
        outcome: CachedResponse | None = None
        result: list[Any] = []
        try:
            outcome = await self.lead(
                flight, primary_key, args=args, kwargs=kwargs, arguments=arguments, result=result
            )
        finally:
            cache.coordinator.land(flight_key, flight, outcome)
        if result:
            return result[0]
        assert outcome is not None
        return self.decoder.decode(outcome.body)

    async def lead(
        self,
        flight: Flight,
        primary_key: str,
        *,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        arguments: dict[str, Any],
        result: list[Any],
    ) -> CachedResponse | None:
        """The flight leader: one HMGET, then the stored value or one (fenced) fill."""
        cache = self.cache
        try:
            reply = await cache.store.lookup(primary_key, cache.variant)
        except ValkeyError:
            cache.count("errors", operation="lookup")
            result.append(await self.function(*args, **kwargs))  # fail open
            return None
        entry = cache.codec.decode(reply.entry)
        now = cache.clock()
        if entry is not None and now - entry.response_time < self.ttl:
            remaining = self.ttl - (now - entry.response_time)
            # XFetch as published: the caller that draws an early refresh recomputes in the
            # foreground (never in the background: its arguments may be request-scoped).
            if not self.refresh_early(entry, remaining):
                cache.count("hit")
                return entry
            cache.count("early_refresh")
        flight.filled = True
        return await self.fill(
            primary_key,
            args=args,
            kwargs=kwargs,
            arguments=arguments,
            seen_fence=reply.fence,
            result=result,
        )

    def refresh_early(self, entry: CachedResponse, remaining: float) -> bool:
        beta = self.cache.xfetch_beta
        if beta <= 0 or entry.origin_time <= 0:
            return False
        draw = 1.0 - random.random()  # noqa: S311 - not security sensitive; in (0, 1]
        return -entry.origin_time * beta * math.log(draw) >= remaining

    async def fill(
        self,
        primary_key: str,
        *,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        arguments: dict[str, Any],
        seen_fence: bytes | None,
        result: list[Any],
    ) -> CachedResponse | None:
        """Lead (or join across processes) one call of the function and store its result.

        ``result`` receives the function's own return value.
        """
        cache = self.cache
        store = cache.store
        token: bytes | None = None
        try:
            attempt = await store.acquire_lock(
                primary_key, cache.variant, cache.lock_ttl_ms, seen_fence=seen_fence
            )
        except ValkeyError:
            cache.count("errors", operation="lock")
        else:
            token = attempt.token
            if token is None:
                shared = await cache.coordinator.await_remote(
                    lock_key=store.lock_key(primary_key, cache.variant),
                    holder_ttl_ms=attempt.holder_ttl_ms or cache.lock_ttl_ms,
                    recheck=lambda: self.recheck(primary_key),
                )
                if shared is not None:
                    cache.count("coalesced")
                    return shared
        cache.count("miss")
        started = cache.clock()
        try:
            value = await self.function(*args, **kwargs)
        except BaseException:
            if token is not None:
                await self.release(primary_key, token)
            raise
        finished = cache.clock()
        result.append(value)
        entry = CachedResponse(
            status=200,
            headers=[],
            body=self.encoder.encode(value),
            request_time=started,
            response_time=finished,
            tags=tuple(self.tags(**arguments) if callable(self.tags) else self.tags),
            cache_control=self.cache_control,
            origin_time=max(0.0, finished - started),
            variant=cache.variant,
        )
        if token is not None:
            await self.save(primary_key, entry, token)
        return entry

    async def recheck(self, primary_key: str) -> CachedResponse | None:
        try:
            reply = await self.cache.store.lookup(primary_key, self.cache.variant)
        except ValkeyError:
            return None
        entry = self.cache.codec.decode(reply.entry)
        if entry is None or self.cache.clock() - entry.response_time >= self.ttl:
            return None
        return entry

    async def save(self, primary_key: str, entry: CachedResponse, token: bytes) -> None:
        cache = self.cache
        retention_ms = int(self.ttl * 1000) + 1
        try:
            await cache.store.store(
                primary_key=primary_key,
                lock_key=cache.store.lock_key(primary_key, cache.variant),
                variant=cache.variant,
                vary_spec=b"",
                entry=cache.codec.encode(entry),
                retention_ms=retention_ms,
                url=b"fn:" + self.identity.encode("utf-8", "replace"),
                token=token,
            )
            if entry.tags:
                await cache.store.add_tags(primary_key, entry.tags, retention_ms)
        except ValkeyError:
            cache.count("errors", operation="store")

    async def release(self, primary_key: str, token: bytes) -> None:
        try:
            await self.cache.store.release(
                primary_key=primary_key, variant=self.cache.variant, token=token
            )
        except ValkeyError:
            self.cache.count("errors", operation="release")
