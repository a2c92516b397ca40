"""cachemw: HTTP caching, sessions and rate limits for ASGI apps, on Valkey.

The public API; FastAPI helpers live in ``cachemw.headers.fastapi``,
``cachemw.sessions.fastapi`` and ``cachemw.ratelimit.fastapi`` (FastAPI stays optional).
"""

from cachemw.cache import CacheInvalidator, CacheMiddleware, CacheSettings, RouteCache, cached
from cachemw.headers import CachePolicy, HeadersMiddleware
from cachemw.metrics import Metrics
from cachemw.ratelimit import RateLimitMiddleware, Rule
from cachemw.sessions import SessionConfig, SessionCookie, SessionMiddleware, SessionStore
from cachemw.valkey import Valkey, ValkeySettings, ValkeyUnavailable

__all__ = [
    "CacheInvalidator",
    "CacheMiddleware",
    "CachePolicy",
    "CacheSettings",
    "HeadersMiddleware",
    "Metrics",
    "RateLimitMiddleware",
    "RouteCache",
    "Rule",
    "SessionConfig",
    "SessionCookie",
    "SessionMiddleware",
    "SessionStore",
    "Valkey",
    "ValkeySettings",
    "ValkeyUnavailable",
    "cached",
]
