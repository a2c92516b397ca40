"""Response caching policies an app declares, and how they meet the headers it sets.

Sans-I/O. A `CachePolicy` renders its Cache-Control and Vary bytes once, at construction,
so applying it on the hot path is a list append. `merge_cache_control` decides what happens
when the handler also set Cache-Control; `not_modified_headers` is the 304 field rule.

Precedence when a policy (route or path rule) meets the handler's own Cache-Control:

1. Storage scope: the more restrictive side wins, whoever said it: no-store > private >
   public. A policy can never make a response the handler marked no-store or private
   cacheable by shared caches, and a no-store policy cannot be loosened by the handler.
2. Lifetimes (max-age, s-maxage, stale-while-revalidate, stale-if-error): the handler's
   explicit value wins; the policy only fills in what the handler left out.
3. Revalidation flags (no-cache, must-revalidate, immutable): union of both sides.
4. Everything else the handler sent (no-transform, extensions, ...) is kept as is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cachemw.http.cache_control import (
    CacheControl,
    format_cache_control,
    is_token,
    parse_cache_control,
)
from cachemw.http.vary import merge_vary

__all__ = [
    "NOT_MODIFIED_FIELDS",
    "CachePolicy",
    "PathPolicies",
    "merge_cache_control",
    "not_modified_headers",
    "policy_applies_to_status",
]

_MAX_DELTA_SECONDS = 2147483648  # RFC 9111 §1.2.2

# RFC 9110 §15.4.5: a 304 carries the fields a 200 would have had among Content-Location,
# Date, ETag, Vary, Cache-Control and Expires, and SHOULD NOT carry other representation
# metadata. Set-Cookie is response control data, not representation metadata: dropping it
# would silently break sessions that rotate a cookie on a conditional GET.
NOT_MODIFIED_FIELDS = frozenset(
    {b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary", b"set-cookie"}
)


def _check_delta_seconds(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int number of seconds or None, got {value!r}")
    if not 0 <= value <= _MAX_DELTA_SECONDS:
        raise ValueError(f"{name} must be between 0 and {_MAX_DELTA_SECONDS} seconds, got {value}")


def _check_field_names(vary: tuple[str, ...]) -> None:
    for name in vary:
        if not isinstance(name, str) or not is_token(name):
            raise ValueError(
                f"vary entries must be header field names (RFC 9110 §5.1 tokens), got {name!r}"
            )
    if "*" in vary and len(vary) > 1:
        raise ValueError(f"vary='*' must stand alone, got {vary!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CachePolicy:
    """Cache-Control (and extra Vary) for a route or a path rule, validated and pre-rendered.

    >>> CachePolicy(public=True, max_age=60).cache_control
    b'public, max-age=60'
    """

    public: bool = False
    private: bool = False
    max_age: int | None = None
    s_maxage: int | None = None
    no_cache: bool = False
    no_store: bool = False
    must_revalidate: bool = False
    immutable: bool = False
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    vary: tuple[str, ...] = ()
    # Rendered once here; the middleware only ever appends these bytes.
    directives: CacheControl = field(init=False, repr=False, compare=False)
    cache_control: bytes = field(init=False, repr=False, compare=False)
    vary_header: bytes | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.vary, str):
            raise ValueError(f"vary must be a tuple of field names, e.g. ({self.vary!r},)")
        object.__setattr__(self, "vary", tuple(self.vary))
        for name in ("max_age", "s_maxage", "stale_while_revalidate", "stale_if_error"):
            _check_delta_seconds(name, getattr(self, name))
        _check_field_names(self.vary)
        self._check_consistency()
        directives = _policy_directives(self)
        object.__setattr__(self, "directives", directives)
        object.__setattr__(self, "cache_control", format_cache_control(directives))
        object.__setattr__(self, "vary_header", merge_vary((), self.vary) if self.vary else None)

    def _check_consistency(self) -> None:
        if self.public and self.private:
            raise ValueError("public=True and private=True conflict: choose one")
        if self.private and self.s_maxage is not None:
            raise ValueError(
                f"s_maxage={self.s_maxage} conflicts with private=True: s-maxage is for "
                "shared caches, which may not store a private response"
            )
        if self.no_store:
            freshness = {
                "public": self.public or None,
                "immutable": self.immutable or None,
                "max_age": self.max_age or None,
                "s_maxage": self.s_maxage,
                "stale_while_revalidate": self.stale_while_revalidate,
                "stale_if_error": self.stale_if_error,
            }
            for name, value in freshness.items():
                if value is not None:
                    raise ValueError(
                        f"no_store=True conflicts with {name}={value!r}: a response that is "
                        "never stored has no freshness (max_age=0 is allowed)"
                    )
        if self.immutable and self.max_age is None and self.s_maxage is None:
            raise ValueError(
                "immutable=True needs max_age or s_maxage: immutable only applies while "
                "the response is fresh (RFC 8246 §2)"
            )


def _policy_directives(policy: CachePolicy) -> CacheControl:
    return CacheControl(
        max_age=policy.max_age,
        s_maxage=policy.s_maxage,
        stale_while_revalidate=policy.stale_while_revalidate,
        stale_if_error=policy.stale_if_error,
        no_cache=policy.no_cache,
        no_store=policy.no_store,
        must_revalidate=policy.must_revalidate,
        public=policy.public,
        private=policy.private,
        immutable=policy.immutable,
    )


def merge_cache_control(policy: CachePolicy, app_values: Sequence[bytes]) -> bytes:
    """The Cache-Control value for a response whose handler already set `app_values`.

    Precedence is documented in the module docstring. Each directive appears once.
    """
    if not app_values:
        return policy.cache_control
    if policy.no_store:
        return policy.cache_control
    app = parse_cache_control(app_values)
    if app.no_store:
        return format_cache_control(app)
    ours = policy.directives
    # An unqualified private/no-cache is stricter than a qualified one (§5.2.2.4, §5.2.2.7).
    private = app.private or ours.private
    private_fields = () if ours.private else app.private_fields
    fully_private = private and not private_fields
    no_cache = app.no_cache or ours.no_cache
    no_cache_fields = () if ours.no_cache else app.no_cache_fields
    merged = dataclasses.replace(
        app,
        private=private,
        private_fields=private_fields,
        public=(app.public or ours.public) and not fully_private,
        s_maxage=None if fully_private else _first(app.s_maxage, ours.s_maxage),
        max_age=_first(app.max_age, ours.max_age),
        stale_while_revalidate=_first(app.stale_while_revalidate, ours.stale_while_revalidate),
        stale_if_error=_first(app.stale_if_error, ours.stale_if_error),
        no_cache=no_cache,
        no_cache_fields=no_cache_fields,
        must_revalidate=app.must_revalidate or ours.must_revalidate,
        immutable=app.immutable or ours.immutable,
    )
    return format_cache_control(merged)


def _first(preferred: int | None, fallback: int | None) -> int | None:
    return fallback if preferred is None else preferred


def policy_applies_to_status(policy: CachePolicy, status: int) -> bool:
    """A route's freshness must not leak onto its errors or redirects.

    Policies that grant freshness apply to 2xx and 304 (which must repeat the 200's
    Cache-Control, §15.4.5); a no-store policy applies to every status.
    """
    return policy.no_store or 200 <= status < 300 or status == 304


def not_modified_headers(
    headers: Iterable[tuple[bytes, bytes]], *, keep: frozenset[bytes] = NOT_MODIFIED_FIELDS
) -> list[tuple[bytes, bytes]]:
    """The fields a 304 carries (RFC 9110 §15.4.5), from the 200's raw header list.

    Last-Modified is kept only when there is no ETag: the RFC's own example of metadata
    that still guides cache updates. Pass `keep` to allow more (e.g. Age for a cache).
    """
    kept: list[tuple[bytes, bytes]] = []
    last_modified: list[tuple[bytes, bytes]] = []
    has_etag = False
    for name, value in headers:
        if name in keep:
            kept.append((name, value))
            has_etag = has_etag or name == b"etag"
        elif name == b"last-modified":
            last_modified.append((name, value))
    return kept if has_etag else kept + last_modified


class PathPolicies:
    """Default policies by request path, e.g. ``{"/static/*": CachePolicy(...)}``.

    A pattern is an exact path, or a prefix ending in ``*``. The most specific rule wins:
    an exact path over any prefix, a longer prefix over a shorter one. Matching is a dict
    lookup plus ``str.startswith`` over the prefixes, no regex per request.
    """

    __slots__ = ("_exact", "_prefixes")

    def __init__(
        self, rules: Mapping[str, CachePolicy] | Iterable[tuple[str, CachePolicy]] = ()
    ) -> None:
        items = rules.items() if isinstance(rules, Mapping) else rules
        exact: dict[str, CachePolicy] = {}
        prefixes: dict[str, CachePolicy] = {}
        for pattern, policy in items:
            if not isinstance(pattern, str) or not pattern.startswith("/"):
                raise ValueError(f"path_rules pattern must start with '/', got {pattern!r}")
            if not isinstance(policy, CachePolicy):
                raise ValueError(f"path_rules[{pattern!r}] must be a CachePolicy, got {policy!r}")
            if "*" in pattern[:-1]:
                raise ValueError(
                    f"path_rules pattern {pattern!r} is invalid: '*' is allowed only at the end"
                )
            target = prefixes if pattern.endswith("*") else exact
            key = pattern.removesuffix("*")
            if key in target:
                raise ValueError(f"path_rules pattern {pattern!r} is given twice")
            target[key] = policy
        self._exact = exact
        self._prefixes = tuple(sorted(prefixes.items(), key=lambda item: -len(item[0])))

    def __bool__(self) -> bool:
        return bool(self._exact or self._prefixes)

    def policy_for(self, path: str) -> CachePolicy | None:
        policy = self._exact.get(path)
        if policy is not None:
            return policy
        for prefix, prefix_policy in self._prefixes:
            if path.startswith(prefix):
                return prefix_policy
        return None
