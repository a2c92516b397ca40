"""Connection settings, validated once at construction."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from cachemw.valkey.url import parse_valkey_url

DEFAULT_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True, slots=True, kw_only=True)
class ValkeySettings:
    """How cachemw talks to Valkey. Every time is in seconds.

    ``command_timeout`` is the whole budget of one call: waiting for a pooled connection,
    connecting, sending, reading and any retry all fit inside it, so a black-holed server
    costs a request at most this much (redis-py's own default of 10 retries with a 5 s socket
    timeout would cost about a minute).
    """

    url: str = DEFAULT_URL
    key_prefix: str = "cachemw"
    connect_timeout: float = 0.5
    command_timeout: float = 0.05
    retries: int = 1
    retry_backoff_base: float = 0.002
    retry_backoff_cap: float = 0.02
    max_connections: int = 64
    health_check_interval: int = 30
    client_name: str = "cachemw"
    breaker_failure_threshold: int = 5
    breaker_reset_timeout: float = 2.0
    multiplexed_connections: int = 2

    def __post_init__(self) -> None:
        parse_valkey_url(self.url)  # raises ValueError naming what is wrong
        for name in ("connect_timeout", "command_timeout", "breaker_reset_timeout"):
            value = getattr(self, name)
            if not 0 < value <= 60:
                raise ValueError(f"{name} must be > 0 and <= 60 seconds, got {value!r}")
        if not 0 <= self.retries <= 5:
            raise ValueError(f"retries must be 0..5, got {self.retries!r}")
        if not 0 <= self.retry_backoff_base <= self.retry_backoff_cap <= 1:
            raise ValueError(
                "retry_backoff_base and retry_backoff_cap must satisfy "
                f"0 <= base <= cap <= 1, got {self.retry_backoff_base!r}, "
                f"{self.retry_backoff_cap!r}"
            )
        if not 1 <= self.max_connections <= 10_000:
            raise ValueError(f"max_connections must be 1..10000, got {self.max_connections!r}")
        if self.health_check_interval < 0:
            raise ValueError(
                f"health_check_interval must be >= 0, got {self.health_check_interval!r}"
            )
        if not 1 <= self.breaker_failure_threshold <= 1000:
            raise ValueError(
                f"breaker_failure_threshold must be 1..1000, got {self.breaker_failure_threshold!r}"
            )
        if not 0 <= self.multiplexed_connections <= 64:
            raise ValueError(
                "multiplexed_connections must be 0..64 (0 turns the fast path off), "
                f"got {self.multiplexed_connections!r}"
            )
        if not self.client_name or any(ch.isspace() for ch in self.client_name):
            raise ValueError(f"client_name must be non-empty without spaces: {self.client_name!r}")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> ValkeySettings:
        """Settings from ``VALKEY_URL`` and ``CACHEMW_<SETTING>`` variables, then overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if "VALKEY_URL" in env:
            values["url"] = env["VALKEY_URL"]
        for field in fields(cls):
            name = f"CACHEMW_{field.name.upper()}"
            if name not in env:
                continue
            raw = env[name]
            try:
                if field.type in ("int",):
                    values[field.name] = int(raw)
                elif field.type in ("float",):
                    values[field.name] = float(raw)
                else:
                    values[field.name] = raw
            except ValueError:
                raise ValueError(f"{name}={raw!r} must be a number") from None
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
