"""Storability, freshness, age and reuse of stored responses (RFC 9111 §3, §4; RFC 5861).

Pure functions over parsed values; the clock is always an argument (``now``,
``request_time``, ``response_time``: epoch seconds). Written for a *shared* cache by default
(``shared=True``), which is what cachemw's response cache is.

Policy decisions beyond the RFC, in one place:

* heuristic freshness (§4.2.2) is never used: a response is stored only with explicit
  freshness (s-maxage, max-age, Expires) or a default TTL the route opted into;
* responses with Set-Cookie are refused unless the route allows them (or the field is
  excluded by a qualified ``private``/``no-cache``, then it is stripped instead);
* only GET responses are stored (a HEAD response has no content to serve a GET with);
* an origin's explicit ``stale-while-revalidate``/``stale-if-error`` is honoured with
  ``s-maxage`` (the CDN idiom), while ``must-revalidate`` and ``proxy-revalidate`` forbid
  every stale use (§4.2.4), and a client's ``max-stale`` never overrides ``s-maxage`` (§5.2.2.10).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from cachemw.http.cache_control import EMPTY_CACHE_CONTROL, CacheControl
from cachemw.http.dates import parse_age, parse_http_date

__all__ = [
    "STORABLE_METHODS",
    "UNDERSTOOD_STATUSES",
    "ServeAction",
    "ServeDecision",
    "ServeReason",
    "StoreDecision",
    "StoreReason",
    "StoredResponseTimes",
    "corrected_initial_age",
    "current_age",
    "freshness_lifetime",
    "has_explicit_freshness",
    "is_storable",
    "retention_seconds",
    "serve_decision",
]

STORABLE_METHODS = frozenset(("GET",))
# Final status codes whose caching requirements we implement (RFC 9110 §15, RFC 6585,
# RFC 7725); consulted for must-understand (RFC 9111 §5.2.2.3).
UNDERSTOOD_STATUSES = frozenset(
    (
        *(200, 201, 202, 203, 204, 205),
        *(300, 301, 302, 303, 305, 307, 308),
        *range(400, 418),
        *(421, 422, 426, 428, 429, 431, 451),
        *(500, 501, 502, 503, 504, 505, 511),
    )
)


class StoreReason(StrEnum):
    """Why a response was (not) stored; values double as metrics labels."""

    STORABLE = "storable"
    METHOD = "method"
    REQUEST_BODY = "request-body"
    STATUS = "status"
    PARTIAL = "partial"
    MUST_UNDERSTAND = "must-understand"
    REQUEST_NO_STORE = "request-no-store"
    NO_STORE = "no-store"
    PRIVATE = "private"
    AUTHORIZATION = "authorization"
    VARY_STAR = "vary-star"
    SET_COOKIE = "set-cookie"
    NO_FRESHNESS = "no-freshness"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreDecision:
    """The outcome of ``is_storable``.

    ``strip_fields`` are lower-case field names that must be removed from the stored
    response (qualified ``private``/``no-cache``, RFC 9111 §5.2.2.4, §5.2.2.7).
    """

    reason: StoreReason
    strip_fields: tuple[str, ...] = ()

    @property
    def storable(self) -> bool:
        return self.reason is StoreReason.STORABLE


_REFUSALS = {reason: StoreDecision(reason=reason) for reason in StoreReason}


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredResponseTimes:
    """When the request that produced a stored response was sent and its response received."""

    request_time: float
    response_time: float


def has_explicit_freshness(
    *, response_cc: CacheControl, has_expires: bool, shared: bool = True
) -> bool:
    """Whether the origin gave an explicit freshness lifetime (RFC 9111 §4.2.1)."""
    return (
        response_cc.max_age is not None
        or (shared and response_cc.s_maxage is not None)
        or has_expires
    )


def is_storable(
    *,
    method: str,
    status: int,
    request_cc: CacheControl,
    response_cc: CacheControl,
    has_authorization: bool,
    has_set_cookie: bool,
    vary: tuple[str, ...] | None,
    has_explicit_freshness_or_default: bool,
    allow_set_cookie: bool = False,
    shared: bool = True,
    has_request_body: bool = False,
    store_partial: bool = False,
    storable_methods: frozenset[str] = STORABLE_METHODS,
) -> StoreDecision:
    """May this response be stored (RFC 9111 §3)? The first failing rule is the reason.

    ``vary`` is ``parse_vary``'s result (``None`` for ``Vary: *``).
    ``has_explicit_freshness_or_default``: see ``has_explicit_freshness``, or-ed with "the
    route configured a default TTL".
    """
    if method not in storable_methods:
        return _REFUSALS[StoreReason.METHOD]
    if has_request_body:
        # A GET with content has no defined semantics (RFC 9110 §9.3.1) and may be used to
        # smuggle variation the key does not see.
        return _REFUSALS[StoreReason.REQUEST_BODY]
    # §3: the status must be final; 304 only freshens (§4.3.4), never becomes an entry.
    if status < 200 or status > 999 or status == 304:
        return _REFUSALS[StoreReason.STATUS]
    if status == 206 and not store_partial:
        return _REFUSALS[StoreReason.PARTIAL]
    understood = status in UNDERSTOOD_STATUSES or (status == 206 and store_partial)
    if response_cc.must_understand and not understood:
        return _REFUSALS[StoreReason.MUST_UNDERSTAND]
    if request_cc.no_store:  # §5.2.1.5
        return _REFUSALS[StoreReason.REQUEST_NO_STORE]
    # §5.2.2.3: must-understand with an understood status overrides no-store.
    if response_cc.no_store and not (response_cc.must_understand and understood):
        return _REFUSALS[StoreReason.NO_STORE]
    if shared and response_cc.private:  # §5.2.2.7
        return _REFUSALS[StoreReason.PRIVATE]
    if (
        shared
        and has_authorization
        and not (
            response_cc.public or response_cc.s_maxage is not None or response_cc.must_revalidate
        )
    ):  # §3.5
        return _REFUSALS[StoreReason.AUTHORIZATION]
    if vary is None:  # §4.1: "*" never matches, so storing it is wasted space
        return _REFUSALS[StoreReason.VARY_STAR]
    strip_fields = _strip_fields(response_cc, shared)
    if has_set_cookie and not allow_set_cookie and "set-cookie" not in strip_fields:
        return _REFUSALS[StoreReason.SET_COOKIE]
    if not has_explicit_freshness_or_default:
        return _REFUSALS[StoreReason.NO_FRESHNESS]
    if not strip_fields:
        return _REFUSALS[StoreReason.STORABLE]
    return StoreDecision(reason=StoreReason.STORABLE, strip_fields=strip_fields)


def _strip_fields(response_cc: CacheControl, shared: bool) -> tuple[str, ...]:
    if not response_cc.no_cache_fields and not (shared and response_cc.private_fields):
        return ()
    # §5.2.2.7: a shared cache must not store fields named by qualified private. §5.2.2.4:
    # fields named by qualified no-cache may not be reused unvalidated; not storing them is
    # the simplest way to honour that.
    names = list(response_cc.private_fields) if shared else []
    names.extend(n for n in response_cc.no_cache_fields if n not in names)
    return tuple(names)


def freshness_lifetime(
    *,
    response_cc: CacheControl,
    expires: bytes | str | None = None,
    date: bytes | str | None = None,
    response_time: float | None = None,
    shared: bool = True,
    default_ttl: float | None = None,
) -> float:
    """Freshness lifetime in seconds (RFC 9111 §4.2.1); 0 means stale on arrival.

    Order: s-maxage (shared caches) > max-age > Expires - Date > ``default_ttl`` > 0.
    An invalid Expires (including "0") means already stale (§5.3). Without a Date, the
    response's receipt time stands in for it (RFC 9110 §6.6.1). ``expires`` with several
    field lines should be passed combined: it is then invalid, hence stale (§4.2.1).
    """
    if shared and response_cc.s_maxage is not None:
        return float(response_cc.s_maxage)
    if response_cc.max_age is not None:
        return float(response_cc.max_age)
    if expires is not None:
        expires_value = parse_http_date(expires, now=response_time)
        if expires_value is None:
            return 0.0
        date_value = None if date is None else parse_http_date(date, now=response_time)
        if date_value is None:
            date_value = response_time
        if date_value is None:
            return 0.0
        return max(0.0, expires_value - date_value)
    if default_ttl is not None:
        return max(0.0, float(default_ttl))
    return 0.0


def corrected_initial_age(
    *,
    age_header: bytes | str | None,
    date_header: bytes | str | None,
    request_time: float,
    response_time: float,
) -> float:
    """The age a response already had when received (RFC 9111 §4.2.3); compute it once."""
    age_value = parse_age(age_header) or 0
    date_value = None if date_header is None else parse_http_date(date_header, now=response_time)
    apparent_age = 0.0 if date_value is None else max(0.0, response_time - date_value)
    response_delay = response_time - request_time
    corrected_age_value = age_value + response_delay
    return max(apparent_age, corrected_age_value)


def current_age(
    *,
    age_header: bytes | str | None,
    date_header: bytes | str | None,
    request_time: float,
    response_time: float,
    now: float,
) -> float:
    """Current age of a stored response (RFC 9111 §4.2.3), upstream Age included.

    Resident time is clamped at 0 so a clock step backwards never yields a negative age.
    """
    initial = corrected_initial_age(
        age_header=age_header,
        date_header=date_header,
        request_time=request_time,
        response_time=response_time,
    )
    return initial + max(0.0, now - response_time)


class ServeAction(StrEnum):
    """What to do with a stored response for this request."""

    SERVE = "serve"  # send it as is (with Age)
    SERVE_STALE_AND_REFRESH = "serve-stale-and-refresh"  # RFC 5861 §3
    REVALIDATE = "revalidate"  # ask the origin (conditionally) first
    GATEWAY_TIMEOUT = "gateway-timeout"  # only-if-cached, not usable: 504 (§5.2.1.7)


class ServeReason(StrEnum):
    FRESH = "fresh"
    MAX_STALE = "max-stale"
    STALE_WHILE_REVALIDATE = "stale-while-revalidate"
    STALE = "stale"
    NO_CACHE = "no-cache"
    REQUEST_NO_CACHE = "request-no-cache"
    REQUEST_MAX_AGE = "request-max-age"
    REQUEST_MIN_FRESH = "request-min-fresh"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeDecision:
    """The outcome of ``serve_decision``.

    ``ttl`` is freshness lifetime minus current age (negative once stale), as RFC 9211's
    Cache-Status ``ttl`` wants. ``serve_stale_on_error`` says whether the stored response may
    answer this request if going to the origin fails with a 5xx or an exception
    (``stale-if-error``, RFC 5861 §4).
    """

    action: ServeAction
    reason: ServeReason
    ttl: float
    serve_stale_on_error: bool = False


def serve_decision(
    *,
    response_cc: CacheControl,
    request_cc: CacheControl,
    freshness_lifetime: float,
    current_age: float,
    shared: bool = True,
    pragma_no_cache: bool = False,
    client_can_force_revalidation: bool = True,
) -> ServeDecision:
    """May the stored response answer this request (RFC 9111 §4.2, §4.2.4, §5.2; RFC 5861)?

    ``pragma_no_cache`` (``parse_pragma_no_cache``) counts only when the request carries no
    Cache-Control directive (§5.4). ``client_can_force_revalidation=False`` ignores the
    request's no-cache/Pragma/max-age/min-fresh for a *fresh* response, so clients cannot
    push every request to the origin (a DoS trade-off the route owner chooses).
    A fresh ``immutable`` response ignores the request's max-age (a browser reload,
    RFC 8246 §2) but not its no-cache.
    """
    ttl = freshness_lifetime - current_age
    staleness = -ttl
    # §4.2.4: must-revalidate / proxy-revalidate forbid any stale use; §5.2.2.10: s-maxage
    # implies proxy-revalidate against the client's max-stale.
    origin_forbids_stale = response_cc.must_revalidate or (shared and response_cc.proxy_revalidate)
    client_stale_forbidden = origin_forbids_stale or (shared and response_cc.s_maxage is not None)
    stale_on_error = (
        not origin_forbids_stale
        and not response_cc.no_cache
        and (
            _within(staleness, response_cc.stale_if_error)
            or _within(staleness, request_cc.stale_if_error)
        )
    )
    reason: ServeReason | None = None
    if response_cc.no_cache:  # §5.2.2.4: never reuse without successful validation
        reason = ServeReason.NO_CACHE
    elif client_can_force_revalidation:
        reason = _request_forces_revalidation(
            request_cc,
            pragma_no_cache,
            current_age,
            ttl,
            fresh_immutable=(ttl > 0 and response_cc.immutable),
        )
    if reason is None:
        if ttl > 0:
            return ServeDecision(action=ServeAction.SERVE, reason=ServeReason.FRESH, ttl=ttl)
        if not client_stale_forbidden and _within(staleness, request_cc.max_stale):
            return ServeDecision(action=ServeAction.SERVE, reason=ServeReason.MAX_STALE, ttl=ttl)
        if not origin_forbids_stale and _within(staleness, response_cc.stale_while_revalidate):
            return ServeDecision(
                action=ServeAction.SERVE_STALE_AND_REFRESH,
                reason=ServeReason.STALE_WHILE_REVALIDATE,
                ttl=ttl,
                serve_stale_on_error=stale_on_error,
            )
        reason = ServeReason.STALE
    action = ServeAction.GATEWAY_TIMEOUT if request_cc.only_if_cached else ServeAction.REVALIDATE
    return ServeDecision(action=action, reason=reason, ttl=ttl, serve_stale_on_error=stale_on_error)


def _within(staleness: float, window: int | None) -> bool:
    return window is not None and staleness <= window


def _has_known_directive(cc: CacheControl) -> bool:
    # §5.4: Pragma is ignored only when Cache-Control is present *and understood*.
    return cc != EMPTY_CACHE_CONTROL and replace(cc, extensions=()) != EMPTY_CACHE_CONTROL


def _request_forces_revalidation(
    request_cc: CacheControl,
    pragma_no_cache: bool,
    age: float,
    ttl: float,
    *,
    fresh_immutable: bool,
) -> ServeReason | None:
    if request_cc.no_cache or (pragma_no_cache and not _has_known_directive(request_cc)):
        return ServeReason.REQUEST_NO_CACHE  # §5.2.1.4, §5.4
    if request_cc.max_age is not None and age > request_cc.max_age and not fresh_immutable:
        return ServeReason.REQUEST_MAX_AGE  # §5.2.1.1
    if request_cc.min_fresh is not None and ttl < request_cc.min_fresh:
        return ServeReason.REQUEST_MIN_FRESH  # §5.2.1.3
    return None


def retention_seconds(
    *,
    freshness_lifetime: float,
    current_age: float,
    response_cc: CacheControl,
    has_validator: bool,
    revalidation_grace: float = 0.0,
    shared: bool = True,
) -> float:
    """How long a stored response stays useful (e.g. the Valkey TTL); 0 means don't keep it.

    Until it expires, plus what is left of the longest stale window the origin allows
    (SWR/SIE, counted from expiry), or ``revalidation_grace`` from now when it has a
    validator (a stale entry with an ETag or Last-Modified can still be answered by a 304
    instead of a full transfer), whichever is longer.
    """
    expires_in = freshness_lifetime - current_age
    retention = max(0.0, expires_in)
    if not (response_cc.must_revalidate or (shared and response_cc.proxy_revalidate)):
        window = max(response_cc.stale_while_revalidate or 0, response_cc.stale_if_error or 0)
        retention = max(retention, expires_in + window)
    if has_validator:
        retention = max(retention, max(0.0, expires_in) + revalidation_grace)
    return retention
