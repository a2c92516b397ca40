"""Exceptions of the sessions feature. The middleware turns the store errors and
``SessionTooLarge`` into responses."""

from __future__ import annotations

__all__ = [
    "SessionDataError",
    "SessionError",
    "SessionNotLoaded",
    "SessionNotReplicated",
    "SessionStoreUnavailable",
    "SessionTooLarge",
]


class SessionError(Exception):
    """Base of the sessions feature's errors."""


class SessionStoreUnavailable(SessionError):
    """Valkey could not load or save the session: the middleware answers 503 (fail closed),
    never a silently empty session that a later write would save over the real one."""


class SessionNotReplicated(SessionStoreUnavailable):
    """A deletion (logout, rotation, revocation) ran on the primary, but fewer replicas than
    ``SessionConfig.logout_replicas`` confirmed it in time: a failover could still bring the
    session back, so it is not acknowledged. The middleware answers 503 and clears the
    cookie anyway (the primary no longer has the session)."""


class SessionTooLarge(SessionError, ValueError):
    """A value or the whole session would exceed ``max_value_bytes``/``max_session_bytes``.
    Raised on assignment, before anything is written; unhandled, the middleware answers 413."""


class SessionNotLoaded(SessionError, RuntimeError):
    """The session was used before ``await session.load()`` or after the response started."""


class SessionDataError(SessionError, ValueError):
    """A stored value does not decode to the type the caller asked for."""
