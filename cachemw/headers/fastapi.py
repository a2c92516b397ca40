"""FastAPI dependencies: ``cache_policy(...)`` and ``condition(...)``.

The only module of cachemw.headers that imports FastAPI (an optional extra). Both return
``fastapi.params.Depends`` objects, used directly (not wrapped in another ``Depends``)::

    @app.get("/items/{item_id}", dependencies=[cache_policy(public=True, max_age=60)])
    async def read_item(item_id: int) -> Item: ...

    @app.put("/items/{item_id}", dependencies=[condition(etag=item_etag)])
    async def replace_item(item_id: int, item: Item) -> Item: ...

``cache_policy(...)`` is also an endpoint decorator, and ``condition``'s `etag` and
`last_modified` are themselves FastAPI dependencies: they may take path parameters,
a database session, anything FastAPI can inject.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar, Unpack

from fastapi import params
from starlette.exceptions import HTTPException
from starlette.requests import Request

from cachemw.headers.middleware import (
    RESPONSE_DIRECTIVES_SCOPE_KEY,
    ROUTE_POLICY_ATTRIBUTE,
    ResponseDirectives,
)
from cachemw.headers.routes import (
    CachePolicyOptions,
    evaluate_route_conditions,
    policy_from,
    to_entity_tag,
    to_epoch_seconds,
)
from cachemw.http.policy import CachePolicy
from cachemw.http.validators import PreconditionOutcome

__all__ = ["CachePolicyDependency", "ConditionDependency", "cache_policy", "condition"]

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def _route_policy_recorder(policy: CachePolicy) -> Callable[[Request], Any]:
    async def record_route_policy(request: Request) -> None:
        directives: ResponseDirectives | None = request.scope.get(RESPONSE_DIRECTIVES_SCOPE_KEY)
        if directives is None:
            raise RuntimeError(
                "cache_policy(...) needs HeadersMiddleware: add "
                "app.add_middleware(cachemw.headers.HeadersMiddleware)"
            )
        directives.policy = policy

    return record_route_policy


class CachePolicyDependency(params.Depends):
    """A route's `CachePolicy` as a FastAPI dependency and as an endpoint decorator."""

    policy: CachePolicy

    def __init__(self, policy: CachePolicy) -> None:
        super().__init__(dependency=_route_policy_recorder(policy))
        object.__setattr__(self, "policy", policy)

    def __call__(self, endpoint: _Endpoint) -> _Endpoint:
        setattr(endpoint, ROUTE_POLICY_ATTRIBUTE, self.policy)
        return endpoint

    @property
    def __signature__(self) -> inspect.Signature:
        # Reached only when FastAPI inspects this object as a dependency callable, i.e.
        # Depends(cache_policy(...)): fail at route definition, not with a 422 per request.
        raise TypeError(
            "cache_policy(...) is already a FastAPI dependency: write "
            "dependencies=[cache_policy(...)], not Depends(cache_policy(...))"
        )


def cache_policy(
    policy: CachePolicy | None = None, /, **options: Unpack[CachePolicyOptions]
) -> CachePolicyDependency:
    """``dependencies=[cache_policy(public=True, max_age=60)]`` or ``@cache_policy(...)``.

    Both need `HeadersMiddleware`. The decorator costs nothing per request (the policy is
    plain data on the endpoint); the dependency form costs one FastAPI dependency call.
    """
    return CachePolicyDependency(policy_from(policy, options))


async def _no_validator() -> None:
    return None


class ConditionDependency(params.Depends):
    """Answers 304/412 from a route's cheap validators before the endpoint runs."""


def condition(
    *,
    etag: Callable[..., Any] | None = None,
    last_modified: Callable[..., Any] | None = None,
) -> ConditionDependency:
    """Django's ``condition`` as a FastAPI dependency.

    `etag` returns the resource's current entity-tag (EntityTag, a quoted value, or a bare
    version like ``"v3"``/``b"17"``); `last_modified` a datetime or epoch seconds; None
    means the resource does not exist. A client's fresh copy gets 304 and a failed
    If-Match/If-Unmodified-Since gets 412 before the endpoint runs, so a PUT with a stale
    If-Match writes nothing. The check and the write are not atomic: for strict
    optimistic concurrency also compare the version in the write itself.
    """
    if etag is None and last_modified is None:
        raise ValueError("condition needs etag=, last_modified= or both; got neither")
    etag_dependency = params.Depends(etag or _no_validator)
    last_modified_dependency = params.Depends(last_modified or _no_validator)

    async def check_preconditions(
        request: Request,
        current_etag: Any = etag_dependency,
        current_last_modified: Any = last_modified_dependency,
    ) -> None:
        result = evaluate_route_conditions(
            request.scope, to_entity_tag(current_etag), to_epoch_seconds(current_last_modified)
        )
        if result.outcome is PreconditionOutcome.NOT_MODIFIED:
            raise HTTPException(status_code=304, headers=result.validator_headers())
        if result.outcome is PreconditionOutcome.PRECONDITION_FAILED:
            raise HTTPException(status_code=412)

    return ConditionDependency(dependency=check_preconditions)
