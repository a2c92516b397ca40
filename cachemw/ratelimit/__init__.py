"""Rate limits on Valkey: exact across processes, one EVALSHA per check, IETF RateLimit fields.

* :class:`RateLimitMiddleware` with :class:`Rule` objects (sliding log, sliding window
  counter or GCRA; matched by route template, path prefix and method);
* :class:`ConcurrencyLimitMiddleware` (at most N requests in flight per identity);
* key functions :func:`client_ip` (default), :func:`authenticated_user`,
  :func:`user_or_client_ip`, :func:`api_key`;
* ``cachemw.ratelimit.fastapi`` (per-route dependencies) is imported on its own, so FastAPI
  stays optional.
"""

from cachemw.http.client_ip import ClientAddressPolicy
from cachemw.http.ratelimit import Decision, Rule, Window, WindowStatus, parse_windows
from cachemw.ratelimit.concurrency import ConcurrencyLimitMiddleware
from cachemw.ratelimit.identity import api_key, authenticated_user, client_ip, user_or_client_ip
from cachemw.ratelimit.limiter import Limiter, Rejection
from cachemw.ratelimit.middleware import RateLimitMiddleware
from cachemw.ratelimit.store import Bucket, Lease, RateLimitStore

__all__ = [
    "Bucket",
    "ClientAddressPolicy",
    "ConcurrencyLimitMiddleware",
    "Decision",
    "Lease",
    "Limiter",
    "RateLimitMiddleware",
    "RateLimitStore",
    "Rejection",
    "Rule",
    "Window",
    "WindowStatus",
    "api_key",
    "authenticated_user",
    "client_ip",
    "parse_windows",
    "user_or_client_ip",
]
