"""The RFC 9111 shared response cache on Valkey, and a function cache for dependencies."""

from cachemw.cache.decorator import IDENTITY_PARAMETERS, FunctionCache, cached
from cachemw.cache.entry import CachedResponse, EntryCodec
from cachemw.cache.invalidation import CacheInvalidator, primary_key_for_url
from cachemw.cache.middleware import METRIC_HELP, CacheMiddleware
from cachemw.cache.settings import DEFAULT_FORWARDING_HEADERS, CacheSettings, RouteCache

__all__ = [
    "DEFAULT_FORWARDING_HEADERS",
    "IDENTITY_PARAMETERS",
    "METRIC_HELP",
    "CacheInvalidator",
    "CacheMiddleware",
    "CacheSettings",
    "CachedResponse",
    "EntryCodec",
    "FunctionCache",
    "RouteCache",
    "cached",
    "primary_key_for_url",
]
