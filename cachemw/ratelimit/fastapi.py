"""Per-route rate limits as FastAPI dependencies (the only module that imports FastAPI).

    limiter = RateLimiter(valkey)
    install_rate_limit_handler(app)   # 429/503 as application/problem+json

    @app.get("/search", dependencies=[Depends(limiter.limit("10/second", name="search")),
                                      Depends(limiter.limit("1000/day", name="search-daily"))])

Each dependency is one EVALSHA. The bucket is the route template (``/items/{id}`` is one
bucket) unless ``per_params`` names parameters or ``bucket`` names a shared counter.
Admitted responses get the RateLimit fields through FastAPI's dependency ``Response``, which
FastAPI merges unless the endpoint returns a ``Response`` object itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import FastAPI, HTTPException, Request, Response

from cachemw.http.client_ip import ClientAddressPolicy
from cachemw.http.ratelimit import Algorithm, KeyFunction, OnError, Rule
from cachemw.metrics import Metrics
from cachemw.ratelimit.identity import client_ip
from cachemw.ratelimit.limiter import Limiter, Rejection
from cachemw.ratelimit.matching import bucket_name, per_params_suffix
from cachemw.ratelimit.store import Bucket, RateLimitStore
from cachemw.valkey import Valkey

__all__ = [
    "RateLimitExceeded",
    "RateLimiter",
    "install_rate_limit_handler",
    "rate_limit_exception_handler",
]

# Only these go on the fallback JSON error; the body-describing ones belong to our body.
_PASSED_ON = (b"retry-after", b"cache-control", b"ratelimit", b"ratelimit-policy")


class RateLimitExceeded(HTTPException):
    """Raised by a limit dependency: a 429 (quota) or 503 (fail-closed, Valkey down)."""

    def __init__(self, rejection: Rejection) -> None:
        headers = {k.decode(): v.decode() for k, v in rejection.headers if k in _PASSED_ON}
        super().__init__(status_code=rejection.status, detail="rate limited", headers=headers)
        self.rejection = rejection


async def rate_limit_exception_handler(request: Request, exc: Exception) -> Response:
    """Render :class:`RateLimitExceeded` as its problem+json response."""
    if not isinstance(exc, RateLimitExceeded):
        raise exc
    response = Response(exc.rejection.body, status_code=exc.rejection.status)
    response.raw_headers = list(exc.rejection.headers)
    return response


def install_rate_limit_handler(app: FastAPI) -> None:
    app.add_exception_handler(RateLimitExceeded, rate_limit_exception_handler)


class RateLimiter:
    """Makes per-route limit dependencies sharing one store and response policy."""

    def __init__(
        self,
        valkey: Valkey,
        *,
        identity: KeyFunction | None = None,
        client_address: ClientAddressPolicy | None = None,
        send_headers: bool = True,
        legacy_headers: bool = False,
        unavailable_retry_after: int = 1,
        metrics: Metrics | None = None,
    ) -> None:
        if identity is not None and client_address is not None:
            raise ValueError("give identity or client_address, not both")
        self.store = RateLimitStore(valkey)
        self.limiter = Limiter(
            self.store,
            metrics=metrics,
            send_headers=send_headers,
            legacy_headers=legacy_headers,
            unavailable_retry_after=unavailable_retry_after,
        )
        self.identity = identity or client_ip(client_address)

    def limit(
        self,
        limit: str,
        *,
        name: str,
        per_params: Sequence[str] = (),
        bucket: str | None = None,
        algorithm: Algorithm = "sliding_log",
        cost: int = 1,
        on_error: OnError = "open",
        shadow: bool = False,
        identity: KeyFunction | None = None,
    ) -> Callable[[Request, Response], Awaitable[None]]:
        """A dependency enforcing ``limit`` (e.g. ``"10/10s;1000/day"``) on its route."""
        rule = Rule(
            name=name,
            limit=limit,
            per_params=tuple(per_params),
            bucket=bucket,
            algorithm=algorithm,
            cost=cost,
            on_error=on_error,
            shadow=shadow,
            identity=identity,
        )
        key_function = identity or self.identity
        # One bucket per route template this dependency guards: bounded by the app's routes.
        buckets: dict[str, Bucket] = {}
        store, check = self.store, self.limiter.check

        async def enforce_rate_limit(request: Request, response: Response) -> None:
            scope = request.scope
            template = getattr(scope.get("route"), "path", None) or ""
            target = buckets.get(template)
            if target is None:
                target = buckets[template] = store.bucket(rule, bucket_name(rule, template or None))
            who = key_function(scope)
            if who is None:
                return
            if rule.per_params:
                convertors = getattr(scope.get("route"), "param_convertors", {})
                who += per_params_suffix(rule.per_params, request.path_params, convertors)
            outcome = await check(target, who)
            if isinstance(outcome, Rejection):
                raise RateLimitExceeded(outcome)
            for key, value in outcome:
                response.headers.append(key.decode("latin-1"), value.decode("latin-1"))

        return enforce_rate_limit
