"""The exceptions the Valkey layer raises; features map them to their failure policy."""

from __future__ import annotations


class ValkeyError(Exception):
    """Base of every error the Valkey layer raises to features."""


class ValkeyUnavailable(ValkeyError):
    """Valkey could not answer within the budget: down, slow, refusing, OOM, READONLY, ...

    Features catch this and apply their documented policy (cache fails open, sessions fail
    closed, rate limits as configured).
    """


class BreakerOpen(ValkeyUnavailable):
    """The circuit breaker is open: the call failed fast without touching the network."""


class ValkeyCommandError(ValkeyError):
    """Valkey answered with an error that is not about availability (a bug or corrupt data)."""
