"""The Valkey layer: the only part of cachemw that talks to Valkey."""

from cachemw.valkey.breaker import BreakerState, CircuitBreaker
from cachemw.valkey.client import Valkey
from cachemw.valkey.errors import BreakerOpen, ValkeyCommandError, ValkeyError, ValkeyUnavailable
from cachemw.valkey.keyspace import Keyspace, digest
from cachemw.valkey.scripts import Script
from cachemw.valkey.settings import ValkeySettings
from cachemw.valkey.url import ValkeyEndpoint, parse_valkey_url

__all__ = [
    "BreakerOpen",
    "BreakerState",
    "CircuitBreaker",
    "Keyspace",
    "Script",
    "Valkey",
    "ValkeyCommandError",
    "ValkeyEndpoint",
    "ValkeyError",
    "ValkeySettings",
    "ValkeyUnavailable",
    "digest",
    "parse_valkey_url",
]
