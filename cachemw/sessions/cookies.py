"""The session cookie on the wire: reading it from ``Cookie`` and precomputed ``Set-Cookie``.

Attribute strings are built once per middleware, so a response that sets or clears the
cookie only concatenates bytes.
"""

from __future__ import annotations

import math

from cachemw.http.dates import format_http_date
from cachemw.sessions.config import SessionConfig
from cachemw.sessions.ids import is_well_formed_id

__all__ = ["CookieCodec", "CookieReading"]


class CookieReading:
    """What the request carried: a well-formed id, or that something (else) was there."""

    __slots__ = ("present", "session_id")

    def __init__(self, session_id: str | None, *, present: bool) -> None:
        self.session_id = session_id
        self.present = present


_NO_COOKIE = CookieReading(None, present=False)


class CookieCodec:
    """Reads the session id from request headers and formats ``Set-Cookie`` values."""

    __slots__ = ("_clear", "_name", "_name_eq", "_set_suffix")

    def __init__(self, config: SessionConfig) -> None:
        cookie = config.cookie
        attributes = [f"Path={cookie.path}"]
        if cookie.domain is not None:
            attributes.append(f"Domain={cookie.domain}")
        if cookie.secure:
            attributes.append("Secure")
        if cookie.http_only:
            attributes.append("HttpOnly")
        attributes.append(f"SameSite={cookie.same_site_attribute}")
        common = "; " + "; ".join(attributes)
        max_age = max(1, math.ceil(config.absolute_lifetime))
        persistence = f"; Max-Age={max_age}" if cookie.persistent else ""
        self._name = cookie.name.encode("ascii")
        self._name_eq = self._name + b"="
        self._set_suffix = (persistence + common).encode("ascii")
        # RFC 6265 §3.1: removal = same name, path and domain, with an expiry in the past.
        expired = format_http_date(0).decode("ascii")
        self._clear = f"{cookie.name}=; Max-Age=0; Expires={expired}{common}".encode("ascii")

    def read(self, headers: list[tuple[bytes, bytes]]) -> CookieReading:
        """The session id in ``Cookie``; a duplicated or malformed one counts as none.

        Several cookies of our name (e.g. one planted for a parent domain or path) make the
        request anonymous rather than letting the order of the header pick one.
        """
        found: bytes | None = None
        count = 0
        name_eq = self._name_eq
        for header_name, value in headers:
            if header_name != b"cookie" or name_eq not in value:
                continue
            for raw_pair in value.split(b";"):
                pair = raw_pair.strip(b" \t")
                if pair.startswith(name_eq):
                    count += 1
                    found = pair[len(name_eq) :]
        if count == 0:
            return _NO_COOKIE
        if count > 1 or found is None or not is_well_formed_id(found):
            return CookieReading(None, present=True)
        return CookieReading(found.decode("ascii"), present=True)

    def set_cookie(self, session_id: str) -> bytes:
        return self._name_eq + session_id.encode("ascii") + self._set_suffix

    @property
    def clear_cookie(self) -> bytes:
        return self._clear
