"""``RateLimitMiddleware``: pure ASGI rate limits by route template, method and path prefix.

Per request: match precompiled rules, compute each matching rule's identity, and run one
EVALSHA per matching rule (one in total for the usual one-rule route). An admitted request
reaches the app and its response start gains the RateLimit fields; a rejected one gets a
429 problem+json (or 503 from a fail-closed rule while Valkey is unavailable) and never
reaches the app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cachemw.http.client_ip import ClientAddressPolicy
from cachemw.http.ratelimit import KeyFunction, Rule
from cachemw.http.routing import route_path
from cachemw.metrics import Metrics
from cachemw.ratelimit.identity import client_ip
from cachemw.ratelimit.limiter import Headers, Limiter, Rejection
from cachemw.ratelimit.matching import RuleMatcher
from cachemw.ratelimit.store import RateLimitStore
from cachemw.valkey import Valkey

__all__ = ["RateLimitMiddleware"]


async def send_rejection(send: Send, rejection: Rejection) -> None:
    """Answer with ``rejection`` instead of the app (the request never reaches it)."""
    # A copy: outer middleware may edit the list in place (MutableHeaders(scope=message)),
    # and the 503 rejection is shared by every request.
    headers = list(rejection.headers)
    await send({"type": "http.response.start", "status": rejection.status, "headers": headers})
    await send({"type": "http.response.body", "body": rejection.body})


class RateLimitMiddleware:
    """Rate limits in front of any ASGI app.

    ``RateLimitMiddleware(app, valkey=valkey, rules=[Rule(name="login", limit="5/minute",
    routes=("/login",), methods=("POST",), on_error="closed")])``

    * ``identity``: the default key function (client address behind ``client_address``'s
      trusted proxies); a rule's own ``identity`` overrides it.
    * ``exempt``: a predicate on the scope; exempt requests are never counted.
    * ``send_headers``: add RateLimit/RateLimit-Policy to admitted responses (429s always
      carry them); ``legacy_headers`` adds ``X-RateLimit-*`` too.
    * ``unavailable_retry_after``: Retry-After of the 503 a fail-closed rule answers.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        valkey: Valkey,
        rules: Sequence[Rule],
        identity: KeyFunction | None = None,
        client_address: ClientAddressPolicy | None = None,
        exempt: Callable[[Mapping[str, Any]], bool] | None = None,
        send_headers: bool = True,
        legacy_headers: bool = False,
        unavailable_retry_after: int = 1,
        metrics: Metrics | None = None,
    ) -> None:
        if not isinstance(valkey, Valkey):
            raise ValueError(f"valkey must be a cachemw Valkey, got {type(valkey).__name__}")
        if isinstance(rules, Rule) or not all(isinstance(rule, Rule) for rule in rules):
            raise ValueError("rules must be a sequence of cachemw Rule objects")
        if identity is not None and client_address is not None:
            raise ValueError("give identity or client_address, not both")
        if identity is not None and not callable(identity):
            raise ValueError(f"identity must be callable, got {identity!r}")
        if exempt is not None and not callable(exempt):
            raise ValueError(f"exempt must be callable, got {exempt!r}")
        self.app = app
        store = RateLimitStore(valkey)
        self.limiter = Limiter(
            store,
            metrics=metrics,
            send_headers=send_headers,
            legacy_headers=legacy_headers,
            unavailable_retry_after=unavailable_retry_after,
        )
        self.matcher = RuleMatcher(rules, store)
        self.identity = identity or client_ip(client_address)
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        targets = self.matcher.match(scope["method"], route_path(scope))
        if not targets or (self.exempt is not None and self.exempt(scope)):
            await self.app(scope, receive, send)
            return
        added: Headers = []
        check = self.limiter.check
        for target, suffix in targets:
            identity = (target.rule.identity or self.identity)(scope)
            if identity is None:
                continue  # the key function says this rule does not apply
            outcome = await check(target.bucket, identity + suffix if suffix else identity)
            if isinstance(outcome, Rejection):
                await send_rejection(send, outcome)
                return
            added += outcome
        if not added:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A new list: the app's may be shared (a prebuilt Response reused per request).
                message = {**message, "headers": [*message.get("headers", ()), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
