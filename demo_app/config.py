"""The demo's settings: Valkey (``VALKEY_URL``, ``STATE_VALKEY_URL``, ``CACHEMW_*``), the
database and the read delay."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from cachemw.sessions import SessionConfig, SessionCookie
from cachemw.valkey import ValkeySettings

__all__ = ["DemoConfig"]

DEFAULT_READ_DELAY = 0.03  # seconds: a realistic query over the network, and visible
# Plain HTTP on 127.0.0.1: no Secure / __Host- prefix (keep the defaults behind HTTPS).
DEMO_SESSIONS = SessionConfig(
    cookie=SessionCookie(name="demo_sid", secure=False), idle_timeout=1800
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoConfig:
    """``valkey``: the Valkey for the response cache (and everything else unless
    ``state_valkey`` is set); ``state_valkey``: a separate Valkey for what must never be
    evicted, sessions and rate-limit counters (``noeviction``, while the cache instance runs
    ``allkeys-lfu``); ``sessions``: the session settings; ``database``: an SQLite path (in
    memory by default); ``read_delay``: seconds each product read sleeps, so the cache's
    effect is visible; ``freeze_after_startup``: ``gc.freeze()`` once started (README,
    "Production settings")."""

    valkey: ValkeySettings = field(default_factory=ValkeySettings)
    state_valkey: ValkeySettings | None = None
    sessions: SessionConfig = DEMO_SESSIONS
    database: str = ":memory:"
    read_delay: float = DEFAULT_READ_DELAY
    freeze_after_startup: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.valkey, ValkeySettings):
            raise ValueError(f"valkey must be ValkeySettings, got {type(self.valkey).__name__}")
        if self.state_valkey is not None and not isinstance(self.state_valkey, ValkeySettings):
            raise ValueError(
                f"state_valkey must be ValkeySettings or None, got {self.state_valkey!r}"
            )
        if not isinstance(self.sessions, SessionConfig):
            raise ValueError(f"sessions must be a SessionConfig, got {self.sessions!r}")
        if isinstance(self.read_delay, bool) or not 0 <= self.read_delay <= 5:
            raise ValueError(f"read_delay must be 0..5 seconds, got {self.read_delay!r}")
        if not self.database:
            raise ValueError("database must be an SQLite path or ':memory:', got ''")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DemoConfig:
        """``VALKEY_URL`` and ``CACHEMW_*`` (see ValkeySettings), ``STATE_VALKEY_URL``,
        ``DEMO_SESSION_STORE_TIMEOUT_MS``, ``DEMO_DATABASE``, ``DEMO_READ_DELAY_MS``."""
        env = os.environ if environ is None else environ
        delay = _seconds(env, "DEMO_READ_DELAY_MS")
        store_timeout = _seconds(env, "DEMO_SESSION_STORE_TIMEOUT_MS")
        state_url = env.get("STATE_VALKEY_URL")
        return cls(
            valkey=ValkeySettings.from_env(env),
            state_valkey=ValkeySettings.from_env(env, url=state_url) if state_url else None,
            sessions=(
                DEMO_SESSIONS
                if store_timeout is None
                else replace(DEMO_SESSIONS, store_timeout=store_timeout)
            ),
            database=env.get("DEMO_DATABASE", ":memory:"),
            read_delay=DEFAULT_READ_DELAY if delay is None else delay,
        )


def _seconds(env: Mapping[str, str], name: str) -> float | None:
    """A setting given in milliseconds, as seconds; None when not set."""
    raw = env.get(name)
    if raw is None:
        return None
    try:
        return float(raw) / 1000
    except ValueError:
        raise ValueError(f"{name}={raw!r} must be a number of milliseconds") from None
