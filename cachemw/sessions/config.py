"""Session settings, validated once at construction (OWASP Session Management Cheat Sheet).

Every check raises ``ValueError`` naming the setting, the value and what is allowed, so a
misconfigured cookie fails at start-up instead of silently being dropped by browsers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["SessionConfig", "SessionCookie"]

# RFC 6265 §4.1.1: a cookie-name is an RFC 2616 token.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
# RFC 6265 §4.1.1 path-av / domain-av: any CHAR except CTLs or ";"; we also refuse
# whitespace and "," so the attribute survives every cookie parser.
_ATTRIBUTE_RE = re.compile(r"[!-+\--:<-~]{1,255}")
_DOMAIN_RE = re.compile(r"\.?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_SAME_SITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
_CLEAR_SITE_DATA = frozenset({"cache", "cookies", "storage", "executionContexts", "*"})
# RFC 6265bis §4.1.2.2: user agents cap Max-Age / Expires at 400 days.
_MAX_LIFETIME = 400 * 86400.0
_MIN_TIMEOUT = 0.01  # Valkey expiries are in milliseconds; below 10 ms is a typo


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionCookie:
    """How the session id travels. Defaults follow OWASP: ``__Host-`` prefix, ``Secure``,
    ``HttpOnly``, ``SameSite=Lax``, ``Path=/``, no ``Domain`` and no ``Max-Age`` (a browser
    session cookie; set ``persistent=True`` to keep it for the absolute lifetime).

    For local development over plain HTTP use e.g. ``SessionCookie(name="sid", secure=False)``.
    """

    name: str = "__Host-sid"
    path: str = "/"
    domain: str | None = None
    secure: bool = True
    http_only: bool = True
    same_site: str = "lax"
    persistent: bool = False

    def __post_init__(self) -> None:
        if not _TOKEN_RE.fullmatch(self.name):
            raise ValueError(
                f"cookie name {self.name!r} must be 1-64 RFC 6265 token characters "
                "(letters, digits and !#$%&'*+-.^_`|~)"
            )
        if not self.path.startswith("/") or not _ATTRIBUTE_RE.fullmatch(self.path):
            raise ValueError(
                f"cookie path {self.path!r} must start with '/' and contain no spaces, "
                "';', ',' or control characters"
            )
        if self.domain is not None and not _DOMAIN_RE.fullmatch(self.domain):
            raise ValueError(f"cookie domain {self.domain!r} must be a host name or None")
        if self.same_site not in _SAME_SITE:
            raise ValueError(
                f"cookie same_site {self.same_site!r} must be one of 'lax', 'strict', 'none'"
            )
        if self.same_site == "none" and not self.secure:
            # Browsers reject SameSite=None cookies that are not Secure (RFC 6265bis §5.6.7).
            raise ValueError("cookie same_site='none' requires secure=True")
        if self.name.startswith("__Host-"):
            # RFC 6265bis §4.1.3.2: __Host- cookies are Secure, Path=/ and host-only.
            if not self.secure:
                raise ValueError(f"cookie name {self.name!r} (__Host- prefix) requires secure=True")
            if self.domain is not None:
                raise ValueError(
                    f"cookie domain {self.domain!r} is not allowed with the __Host- prefix "
                    "(it must be None)"
                )
            if self.path != "/":
                raise ValueError(f"cookie path {self.path!r} must be '/' with the __Host- prefix")
        if self.name.startswith("__Secure-") and not self.secure:
            raise ValueError(f"cookie name {self.name!r} (__Secure- prefix) requires secure=True")

    @property
    def same_site_attribute(self) -> str:
        return _SAME_SITE[self.same_site]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """Session lifetimes, limits and cookie. Times are in seconds.

    ``idle_timeout`` is sliding: each request that loads the session pushes its expiry to
    ``now + idle_timeout``, but at most once per ``refresh_throttle`` (default idle/10) and
    never past ``absolute_lifetime`` after creation. Both are enforced by Valkey expiries.

    ``store_timeout`` is the Valkey budget of a session call; ``None`` (the default) means
    the client's ``command_timeout`` but at least 250 ms. Sessions fail closed, so they are
    more patient than the cache's 50 ms: a momentary stall should cost latency, not a 503.

    ``logout_replicas`` makes deletions durable across a failover. Valkey replicates
    asynchronously, so a logout the primary ran can still be missing on the replica promoted
    when that primary dies a moment later, bringing the session back. With ``N > 0`` every
    deletion (``destroy()``, the old id of a ``rotate()``, :meth:`SessionStore.revoke_session`,
    :meth:`SessionStore.revoke_user_sessions`) also waits, within ``store_timeout``, until
    ``N`` replicas hold it (``WAIT``); if fewer confirm, it is not acknowledged: the request
    answers 503 (the cookie is still cleared) and the revoke methods raise. The cost is one
    more round trip plus the replica lag on those requests only; with fewer than ``N``
    reachable replicas they all answer 503.
    """

    cookie: SessionCookie = field(default_factory=SessionCookie)
    idle_timeout: float = 1800.0
    absolute_lifetime: float = 8 * 3600.0
    refresh_throttle: float | None = None
    max_value_bytes: int = 64 * 1024
    max_session_bytes: int = 256 * 1024
    clear_site_data: tuple[str, ...] = ()
    retry_after: int = 1
    store_timeout: float | None = None
    logout_replicas: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.cookie, SessionCookie):
            raise ValueError(f"cookie must be a SessionCookie, got {type(self.cookie).__name__}")
        if not _MIN_TIMEOUT <= self.idle_timeout <= _MAX_LIFETIME:
            raise ValueError(
                f"idle_timeout must be between {_MIN_TIMEOUT} s and 400 days, "
                f"got {self.idle_timeout!r}"
            )
        if not self.idle_timeout <= self.absolute_lifetime <= _MAX_LIFETIME:
            raise ValueError(
                "absolute_lifetime must be >= idle_timeout and <= 400 days, "
                f"got {self.absolute_lifetime!r}"
            )
        throttle = self.refresh_throttle
        if throttle is not None and not 0 <= throttle < self.idle_timeout:
            raise ValueError(f"refresh_throttle must be >= 0 and < idle_timeout, got {throttle!r}")
        if not 1 <= self.max_value_bytes <= self.max_session_bytes <= 512 * 1024 * 1024:
            raise ValueError(
                "max_value_bytes and max_session_bytes must satisfy "
                "1 <= max_value_bytes <= max_session_bytes <= 512 MiB, got "
                f"{self.max_value_bytes!r}, {self.max_session_bytes!r}"
            )
        unknown = [d for d in self.clear_site_data if d not in _CLEAR_SITE_DATA]
        if unknown:
            raise ValueError(
                f"clear_site_data {unknown!r} not allowed; use any of {sorted(_CLEAR_SITE_DATA)}"
            )
        if not 0 <= self.retry_after <= 3600:
            raise ValueError(f"retry_after must be 0..3600 seconds, got {self.retry_after!r}")
        if self.store_timeout is not None and not 0 < self.store_timeout <= 60:
            raise ValueError(
                f"store_timeout must be > 0 and <= 60 seconds or None, got {self.store_timeout!r}"
            )
        replicas = self.logout_replicas
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= 64:
            raise ValueError(
                f"logout_replicas must be an int from 0 (do not wait) to 64 replicas, "
                f"got {replicas!r}"
            )

    @property
    def idle_ms(self) -> int:
        return max(1, round(self.idle_timeout * 1000))

    @property
    def absolute_ms(self) -> int:
        return max(1, round(self.absolute_lifetime * 1000))

    @property
    def refresh_throttle_ms(self) -> int:
        if self.refresh_throttle is None:
            return self.idle_ms // 10
        return round(self.refresh_throttle * 1000)
