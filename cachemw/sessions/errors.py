"""Exceptions of the sessions feature. The middleware turns the first two into responses."""

from __future__ import annotations

__all__ = [
    "SessionDataError",
    "SessionError",
    "SessionNotLoaded",
    "SessionStoreUnavailable",
    "SessionTooLarge",
]


class SessionError(Exception):
    """Base of the sessions feature's errors."""


class SessionStoreUnavailable(SessionError):
    """Valkey could not load or save the session: the middleware answers 503 (fail closed),
    never a silently empty session that a later write would save over the real one."""


class SessionTooLarge(SessionError, ValueError):
    """A value or the whole session would exceed ``max_value_bytes``/``max_session_bytes``.
    Raised on assignment, before anything is written; unhandled, the middleware answers 413."""


class SessionNotLoaded(SessionError, RuntimeError):
    """The session was used before ``await session.load()`` or after the response started."""


class SessionDataError(SessionError, ValueError):
    """A stored value does not decode to the type the caller asked for."""
