"""cachemw: HTTP caching, sessions and rate limits for ASGI apps, on Valkey."""

from cachemw.valkey import Valkey, ValkeySettings, ValkeyUnavailable

__all__ = ["Valkey", "ValkeySettings", "ValkeyUnavailable"]
