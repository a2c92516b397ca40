"""CSRF protection with a synchronizer token bound to the session (OWASP CSRF Cheat Sheet).

The token is a session value (field ``_csrf_token``, reserved by this module): the page
embeds it, and every unsafe request sends it back in the ``X-CSRF-Token`` header. It is
compared in constant time. ``SameSite=Lax`` on the session cookie is the first line of
defence; the token covers what SameSite does not (same-site subdomains, older browsers).
Issue a fresh token after login with :func:`rotate_csrf_token`. FastAPI users take
:func:`cachemw.sessions.fastapi.require_csrf`; plain Starlette calls :func:`csrf_token_matches`.
"""

from __future__ import annotations

import hmac
import secrets

from cachemw.sessions.session import Session

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SAFE_METHODS",
    "csrf_token",
    "csrf_token_matches",
    "rotate_csrf_token",
]

CSRF_FIELD = "_csrf_token"
CSRF_HEADER = "x-csrf-token"
# RFC 9110 §9.2.1: safe methods do not change state, so they need no token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def csrf_token(session: Session) -> str:
    """The session's token, created (and the session with it) on first use."""
    token = session.get(CSRF_FIELD, type=str)
    if token is None:
        token = rotate_csrf_token(session)
    return token


def rotate_csrf_token(session: Session) -> str:
    token = secrets.token_urlsafe(32)
    session[CSRF_FIELD] = token
    return token


def csrf_token_matches(session: Session, presented: str | None) -> bool:
    """Whether ``presented`` is this session's token (constant-time comparison)."""
    expected = session.get(CSRF_FIELD, type=str)
    if expected is None or presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "replace"))
