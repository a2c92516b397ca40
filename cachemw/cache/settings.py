"""Response cache configuration: validated once, frozen, keyword-only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cachemw.http.cache_control import is_token

__all__ = ["DEFAULT_FORWARDING_HEADERS", "CacheSettings", "RouteCache", "RouteRules"]

# Request fields that make frameworks and proxies see another URL, scheme, host or method
# than the cache key does: a response built from them must never be stored under the
# clean key (web cache poisoning).
DEFAULT_FORWARDING_HEADERS = (
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-host",
    "x-host",
)
# Cookies set by client-side analytics that servers never read.
DEFAULT_IGNORED_COOKIES = ("_ga", "_ga_*", "_gid", "_gat*", "_gcl_*", "_fbp", "_fbc", "_hj*")
MIB = 1024 * 1024


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value!r}")


def _check_field_names(name: str, values: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValueError(f"{name} must be a tuple of header names, e.g. ({values!r},)")
    lowered = tuple(v.lower() for v in values)
    for value in lowered:
        if not is_token(value):
            raise ValueError(f"{name} entries must be header field names, got {value!r}")
    return lowered


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteCache:
    """What one route (or path prefix) opts into. Everything defaults to the safe choice.

    ``default_ttl``: freshness for responses without explicit freshness (Cache-Control
    max-age/s-maxage, Expires); only routes that set it get one.
    ``allow_cookies``/``allow_authorization``: serve and store requests carrying a Cookie /
    Authorization. Only for routes whose responses do not depend on who asks.
    ``allow_set_cookie``: store responses that set cookies (they are replayed to everyone).
    ``tags``: surrogate keys attached to every stored response of the route.
    ``enabled=False`` keeps the cache away from the route entirely.
    """

    enabled: bool = True
    default_ttl: float | None = None
    allow_cookies: bool = False
    allow_authorization: bool = False
    allow_set_cookie: bool = False
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.default_ttl is not None:
            _check_range("default_ttl", self.default_ttl, 0, 2147483648)
        if isinstance(self.tags, str):
            raise ValueError(f"tags must be a tuple of strings, e.g. ({self.tags!r},)")
        for tag in self.tags:
            if not tag or len(tag) > 256:
                raise ValueError(f"tags entries must be 1..256 characters, got {tag!r}")


DEFAULT_ROUTE = RouteCache()


class RouteRules:
    """Route settings by path: an exact path, or a prefix ending in ``*``; most specific wins."""

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, rules: Mapping[str, RouteCache]) -> None:
        exact: dict[str, RouteCache] = {}
        prefixes: list[tuple[str, RouteCache]] = []
        for pattern, route in rules.items():
            if not isinstance(pattern, str) or not pattern.startswith("/"):
                raise ValueError(f"routes pattern must start with '/', got {pattern!r}")
            if "*" in pattern[:-1]:
                raise ValueError(f"routes pattern {pattern!r}: '*' is allowed only at the end")
            if not isinstance(route, RouteCache):
                raise ValueError(f"routes[{pattern!r}] must be a RouteCache, got {route!r}")
            if pattern.endswith("*"):
                prefixes.append((pattern[:-1], route))
            else:
                exact[pattern] = route
        self._exact = exact
        self._prefixes = tuple(sorted(prefixes, key=lambda item: -len(item[0])))

    def route_for(self, path: str) -> RouteCache:
        route = self._exact.get(path)
        if route is not None:
            return route
        for prefix, prefix_route in self._prefixes:
            if path.startswith(prefix):
                return prefix_route
        return DEFAULT_ROUTE


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheSettings:
    """How the shared response cache behaves. Times are seconds, sizes bytes.

    ``routes``: `RouteCache` settings by path pattern (exact, or a prefix ending in ``*``),
    matched against the path below the app's root_path, as the app's own routes are.
    ``honor_client_no_cache``: a client's ``no-cache``/``max-age``/``min-fresh`` may force a
    trip to the origin (RFC 9111 §5.2.1). On by default for correctness; turning it off
    stops clients from pushing every request through to the origin (a DoS trade-off).
    ``keyed_headers``: forwarding headers to add to the cache key instead of bypassing.
    ``coalesce_wait``: how long a request waits for another's fill before going to the app.
    ``revalidation_grace``: how long a stale response with a validator is kept for 304s.
    ``xfetch_beta``: XFetch early-refresh eagerness (0 disables).
    ``near_cache_entries``: keep up to this many looked-up entries in process, kept coherent
    by Valkey key tracking (0, the default, turns the near cache off);
    ``near_cache_max_bytes`` bounds their total size and ``near_cache_ttl`` the life of each
    (the most a missed invalidation could cost).
    """

    routes: Mapping[str, RouteCache] = field(default_factory=dict)
    max_body_size: int = MIB
    max_variants: int = 32
    max_url_length: int = 8192
    max_header_count: int = 100
    max_header_bytes: int = 32 * 1024
    forwarding_headers: tuple[str, ...] = DEFAULT_FORWARDING_HEADERS
    keyed_headers: tuple[str, ...] = ()
    ignored_cookies: tuple[str, ...] = DEFAULT_IGNORED_COOKIES
    honor_client_no_cache: bool = True
    normalize_query: bool = False
    tag_header: str = "cache-tag"
    lock_ttl: float = 10.0
    coalesce_wait: float = 5.0
    hit_for_pass_ttl: float = 5.0
    revalidation_grace: float = 60.0
    max_background_refreshes: int = 8
    xfetch_beta: float = 1.0
    compress_min_size: int | None = None
    signing_key: bytes | None = None
    cache_name: str = "cachemw"
    near_cache_entries: int = 0
    near_cache_max_bytes: int = 64 * MIB
    near_cache_ttl: float = 1.0
    rules: RouteRules = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_range("max_body_size", self.max_body_size, 0, 512 * MIB)
        _check_range("max_variants", self.max_variants, 1, 1024)
        _check_range("max_url_length", self.max_url_length, 64, 1024 * 1024)
        _check_range("max_header_count", self.max_header_count, 1, 10_000)
        _check_range("max_header_bytes", self.max_header_bytes, 256, 1024 * 1024)
        _check_range("lock_ttl", self.lock_ttl, 0.01, 600)
        _check_range("coalesce_wait", self.coalesce_wait, 0, 600)
        _check_range("hit_for_pass_ttl", self.hit_for_pass_ttl, 0, 3600)
        _check_range("revalidation_grace", self.revalidation_grace, 0, 30 * 86400)
        _check_range("max_background_refreshes", self.max_background_refreshes, 0, 10_000)
        _check_range("xfetch_beta", self.xfetch_beta, 0, 100)
        _check_range("near_cache_entries", self.near_cache_entries, 0, 10_000_000)
        _check_range("near_cache_max_bytes", self.near_cache_max_bytes, 1024, 64 * 1024 * MIB)
        _check_range("near_cache_ttl", self.near_cache_ttl, 0.001, 60)
        object.__setattr__(
            self,
            "forwarding_headers",
            _check_field_names("forwarding_headers", self.forwarding_headers),
        )
        object.__setattr__(
            self, "keyed_headers", _check_field_names("keyed_headers", self.keyed_headers)
        )
        tag_header = _check_field_names("tag_header", (self.tag_header,))[0]
        object.__setattr__(self, "tag_header", tag_header)
        if isinstance(self.ignored_cookies, str):
            raise ValueError("ignored_cookies must be a tuple of cookie names")
        if not is_token(self.cache_name):
            raise ValueError(f"cache_name must be a token, got {self.cache_name!r}")
        object.__setattr__(self, "rules", RouteRules(self.routes))
