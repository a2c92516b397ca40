"""Applies a rule's policy to one check: admit (with headers), 429, 503, shadow, fail open.

Shared by the middleware and the FastAPI dependency, so both answer identically.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cachemw.http.ratelimit import (
    Decision,
    Rule,
    format_legacy_headers,
    format_rule_ratelimit,
    quota_exceeded_body,
    reduced_capacity_body,
    retry_after_seconds,
)
from cachemw.metrics import Metrics
from cachemw.ratelimit.store import Bucket, RateLimitStore
from cachemw.valkey import ValkeyError

__all__ = ["Limiter", "Rejection", "problem_response"]

logger = logging.getLogger("cachemw.ratelimit")

Headers = list[tuple[bytes, bytes]]

# RFC 9111 §5.2.2.5: a 429/503 answers one client at one moment; no cache may reuse it.
_NO_STORE = (b"cache-control", b"no-store")
_PROBLEM_JSON = (b"content-type", b"application/problem+json")

ALLOWED = "cachemw_ratelimit_allowed_total"
LIMITED = "cachemw_ratelimit_limited_total"
SHADOW_LIMITED = "cachemw_ratelimit_shadow_limited_total"
ERRORS = "cachemw_ratelimit_errors_total"
FAIL_OPEN = "cachemw_ratelimit_fail_open_total"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A complete response that replaces the app's (429 or 503)."""

    status: int
    headers: Headers
    body: bytes


def problem_response(status: int, body: bytes, retry_after: int, extra: Headers) -> Rejection:
    headers = [
        _PROBLEM_JSON,
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after).encode()),
        _NO_STORE,
        *extra,
    ]
    return Rejection(status, headers, body)


class Limiter:
    """One store plus the response policy every rule shares."""

    __slots__ = ("_unavailable", "legacy_headers", "metrics", "send_headers", "store")

    def __init__(
        self,
        store: RateLimitStore,
        *,
        metrics: Metrics | None = None,
        send_headers: bool = True,
        legacy_headers: bool = False,
        unavailable_retry_after: int = 1,
    ) -> None:
        if isinstance(unavailable_retry_after, bool) or not (
            isinstance(unavailable_retry_after, int) and 1 <= unavailable_retry_after <= 3600
        ):
            raise ValueError(
                f"unavailable_retry_after must be 1..3600 seconds, got {unavailable_retry_after!r}"
            )
        self.store = store
        self.metrics = metrics
        self.send_headers = send_headers
        self.legacy_headers = legacy_headers
        self._unavailable = problem_response(
            503, reduced_capacity_body(), unavailable_retry_after, []
        )
        if metrics is not None:
            metrics.describe(ALLOWED, "Requests a rate limit admitted")
            metrics.describe(LIMITED, "Requests a rate limit rejected with 429")
            metrics.describe(SHADOW_LIMITED, "Requests a shadow rule would have rejected")
            metrics.describe(ERRORS, "Rate-limit checks that failed (Valkey unavailable)")
            metrics.describe(FAIL_OPEN, "Requests admitted unchecked by a fail-open rule")

    async def check(
        self, bucket: Bucket, identity: str, *, cost: int | None = None
    ) -> Headers | Rejection:
        """Headers to add to the app's response, or the response that replaces it."""
        rule = bucket.rule
        metrics = self.metrics
        try:
            decision = await self.store.hit(bucket, identity, cost=cost)  # one EVALSHA
        except ValkeyError:
            # The Valkey layer logs the outage once per state change; here only the policy.
            if metrics is not None:
                metrics.incr(ERRORS, rule=rule.name)
            if rule.on_error == "closed" and not rule.shadow:
                return self._unavailable
            if metrics is not None:
                metrics.incr(FAIL_OPEN, rule=rule.name)
            return []
        if decision.admitted:
            if metrics is not None:
                metrics.incr(ALLOWED, rule=rule.name)
            if rule.shadow or not self.send_headers:
                return []
            return self._headers(rule, decision)
        if rule.shadow:
            if metrics is not None:
                metrics.incr(SHADOW_LIMITED, rule=rule.name)
            # Shadow mode exists to see what a rule would do: each decision is the output.
            logger.info("shadow rate limit %s would reject a request", rule.name)
            return []
        if metrics is not None:
            metrics.incr(LIMITED, rule=rule.name)
        body = quota_exceeded_body([s.policy for s in decision.violated])
        headers = self._headers(rule, decision)
        return problem_response(429, body, retry_after_seconds(decision), headers)

    def _headers(self, rule: Rule, decision: Decision) -> Headers:
        # Remaining quota in requests of the rule's cost, as RateLimit-Policy states it.
        headers = [
            (b"ratelimit-policy", rule.policy_header),
            (b"ratelimit", format_rule_ratelimit(rule, decision)),
        ]
        if self.legacy_headers:
            headers += format_legacy_headers(decision.statuses, cost=rule.cost)
        return headers
