"""Route-level helpers that need no framework beyond Starlette.

`cache_policy(...)` marks an endpoint with a `CachePolicy` (plain data on the function or
endpoint class; `HeadersMiddleware` reads it from ``scope["endpoint"]``). `condition(...)`
guards a Starlette endpoint with cheap validators, so 304/412 are answered before the
body is computed and a stale If-Match stops a write. The FastAPI flavours in
`cachemw.headers.fastapi` share everything below.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypedDict, TypeVar, Unpack, cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from cachemw.headers.middleware import (
    RESPONSE_DIRECTIVES_SCOPE_KEY,
    ROUTE_POLICY_ATTRIBUTE,
    ResponseDirectives,
)
from cachemw.http.dates import format_http_date
from cachemw.http.policy import CachePolicy
from cachemw.http.validators import (
    EntityTag,
    PreconditionOutcome,
    RequestConditions,
    evaluate_preconditions,
    parse_entity_tag,
)

__all__ = [
    "CachePolicyOptions",
    "ConditionalResult",
    "RouteCachePolicy",
    "RouteCondition",
    "cache_policy",
    "condition",
    "evaluate_route_conditions",
    "to_entity_tag",
    "to_epoch_seconds",
]

_Endpoint = TypeVar("_Endpoint")
_GET_OR_HEAD = frozenset({"GET", "HEAD"})

ETagValue = EntityTag | str | bytes | None
LastModifiedValue = datetime | float | int | None
RequestEndpoint = Callable[[Request], Awaitable[Response]] | Callable[[Request], Response]


class CachePolicyOptions(TypedDict, total=False):
    """The keyword arguments of `CachePolicy`, for `cache_policy(**options)`."""

    public: bool
    private: bool
    max_age: int | None
    s_maxage: int | None
    no_cache: bool
    no_store: bool
    must_revalidate: bool
    immutable: bool
    stale_while_revalidate: int | None
    stale_if_error: int | None
    vary: tuple[str, ...]


def policy_from(policy: CachePolicy | None, options: CachePolicyOptions) -> CachePolicy:
    if policy is None:
        return CachePolicy(**options)
    if options:
        raise ValueError(
            f"cache_policy takes either a CachePolicy or keyword options, got both: {options!r}"
        )
    if not isinstance(policy, CachePolicy):
        raise ValueError(f"cache_policy policy must be a CachePolicy, got {policy!r}")
    return policy


class RouteCachePolicy:
    """An endpoint decorator attaching a `CachePolicy`; the endpoint is not wrapped."""

    __slots__ = ("policy",)

    def __init__(self, policy: CachePolicy) -> None:
        self.policy = policy

    def __call__(self, endpoint: _Endpoint) -> _Endpoint:
        setattr(endpoint, ROUTE_POLICY_ATTRIBUTE, self.policy)
        return endpoint


def cache_policy(
    policy: CachePolicy | None = None, /, **options: Unpack[CachePolicyOptions]
) -> RouteCachePolicy:
    """``@cache_policy(public=True, max_age=60)`` or ``@cache_policy(SHARED_POLICY)``.

    Works on Starlette endpoints (functions or HTTPEndpoint classes) and on FastAPI path
    functions, above or below the route decorator. Needs `HeadersMiddleware`.
    """
    return RouteCachePolicy(policy_from(policy, options))


def to_entity_tag(value: ETagValue) -> EntityTag | None:
    """A route's current ETag as an EntityTag.

    A quoted value (``'"v3"'``, ``'W/"v3"'``) is parsed; anything else (a version number,
    a hash) becomes the opaque part of a strong tag. Characters an entity-tag cannot hold
    (space, DQUOTE, controls) raise ValueError: that is a bug in the route, not the client.
    """
    if value is None or isinstance(value, EntityTag):
        return value
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if raw[:1] != b'"' and raw[:2] != b"W/":
        return EntityTag(raw)
    etag = parse_entity_tag(raw)
    if etag is None:
        raise ValueError(f"route ETag {value!r} is not a valid entity-tag (RFC 9110 §8.8.3)")
    return etag


def to_epoch_seconds(value: LastModifiedValue) -> float | None:
    """A route's Last-Modified as epoch seconds; a naive datetime is taken as UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"last_modified must be a datetime or epoch seconds, got {value!r}")
    return float(value)


class ConditionalResult:
    """The outcome of a route's preconditions, and the headers a 304 needs."""

    __slots__ = ("etag", "last_modified", "outcome")

    def __init__(
        self, outcome: PreconditionOutcome, etag: EntityTag | None, last_modified: float | None
    ) -> None:
        self.outcome = outcome
        self.etag = etag
        self.last_modified = last_modified

    def validator_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.etag is not None:
            headers["etag"] = self.etag.to_bytes().decode("latin-1")
        if self.last_modified is not None:
            headers["last-modified"] = format_http_date(self.last_modified).decode("ascii")
        return headers


def evaluate_route_conditions(
    scope: Scope, etag: EntityTag | None, last_modified: float | None
) -> ConditionalResult:
    """Evaluate a request's preconditions against a route's current validators.

    The validators are also handed to `HeadersMiddleware` (when installed) so a GET/HEAD
    response carries them without digesting its body. A GET/HEAD for which the route has
    no validators at all is left to the handler (it will 404, §13.2.1); for other methods
    a missing resource makes If-Match fail and If-None-Match: * pass.
    """
    method: str = scope["method"]
    is_get_or_head = method in _GET_OR_HEAD
    directives: ResponseDirectives | None = scope.get(RESPONSE_DIRECTIVES_SCOPE_KEY)
    if directives is not None and is_get_or_head:
        directives.etag = etag
        directives.last_modified = last_modified
    exists = etag is not None or last_modified is not None
    conditions = RequestConditions.from_headers(scope["headers"])
    if conditions is None or (is_get_or_head and not exists):
        return ConditionalResult(PreconditionOutcome.PROCEED, etag, last_modified)
    outcome = evaluate_preconditions(
        conditions,
        method=method,
        etag=etag,
        last_modified=last_modified,
        exists=exists,
        now=time.time(),
    )
    return ConditionalResult(outcome, etag, last_modified)


async def _call(function: Callable[[Request], Any], request: Request) -> Any:
    result = function(request)
    return await result if inspect.isawaitable(result) else result


class RouteCondition:
    """Decorator for Starlette ``endpoint(request)`` functions; see `condition`."""

    __slots__ = ("etag", "last_modified")

    def __init__(
        self,
        etag: Callable[[Request], Awaitable[ETagValue] | ETagValue] | None,
        last_modified: Callable[[Request], Awaitable[LastModifiedValue] | LastModifiedValue] | None,
    ) -> None:
        if etag is None and last_modified is None:
            raise ValueError("condition needs etag=, last_modified= or both; got neither")
        self.etag = etag
        self.last_modified = last_modified

    async def evaluate(self, request: Request) -> ConditionalResult:
        etag = to_entity_tag(await _call(self.etag, request)) if self.etag else None
        last_modified = (
            to_epoch_seconds(await _call(self.last_modified, request))
            if self.last_modified
            else None
        )
        return evaluate_route_conditions(request.scope, etag, last_modified)

    def __call__(self, endpoint: RequestEndpoint) -> Callable[[Request], Awaitable[Response]]:
        is_async = inspect.iscoroutinefunction(endpoint)
        async_endpoint = cast(Callable[[Request], Awaitable[Response]], endpoint)
        sync_endpoint = cast(Callable[[Request], Response], endpoint)

        @functools.wraps(endpoint)
        async def guarded_endpoint(request: Request) -> Response:
            result = await self.evaluate(request)
            if result.outcome is PreconditionOutcome.NOT_MODIFIED:
                return Response(status_code=304, headers=result.validator_headers())
            if result.outcome is PreconditionOutcome.PRECONDITION_FAILED:
                return Response(status_code=412)
            if is_async:
                return await async_endpoint(request)
            return await run_in_threadpool(sync_endpoint, request)

        return guarded_endpoint


def condition(
    *,
    etag: Callable[[Request], Awaitable[ETagValue] | ETagValue] | None = None,
    last_modified: Callable[[Request], Awaitable[LastModifiedValue] | LastModifiedValue]
    | None = None,
) -> RouteCondition:
    """Django's ``condition`` for Starlette: ``@condition(etag=current_etag)``.

    `etag`/`last_modified` take the request and return the resource's current validator
    (e.g. from a version column), cheaply. A fresh client copy gets 304 and a failed
    If-Match/If-Unmodified-Since gets 412 without the endpoint running, so a PUT with a
    stale If-Match writes nothing. The check and the write are not atomic: for strict
    optimistic concurrency also compare the version in the write itself.
    """
    return RouteCondition(etag, last_modified)
