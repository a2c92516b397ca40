"""Settings are validated once, at start-up, with errors that name the setting."""

from __future__ import annotations

import pytest

from cachemw.valkey import Valkey
from cachemw.valkey.settings import ValkeySettings


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"command_timeout": 0}, "command_timeout"),
        ({"command_timeout": -1}, "command_timeout"),
        ({"connect_timeout": 120}, "connect_timeout"),
        ({"retries": 9}, "retries"),
        ({"max_connections": 0}, "max_connections"),
        ({"breaker_failure_threshold": 0}, "breaker_failure_threshold"),
        ({"breaker_reset_timeout": 0}, "breaker_reset_timeout"),
        ({"key_prefix": "bad prefix"}, "key_prefix"),
        ({"key_prefix": "{tag}"}, "key_prefix"),
        ({"client_name": "has space"}, "client_name"),
        ({"retry_backoff_base": 0.5, "retry_backoff_cap": 0.1}, "retry_backoff"),
    ],
)
def test_bad_setting_fails_at_start_up_naming_it(
    overrides: dict[str, object], setting: str
) -> None:
    with pytest.raises(ValueError, match=setting):
        Valkey(ValkeySettings(**overrides))  # type: ignore[arg-type]


def test_defaults_never_inherit_redis_py_minute_long_budget() -> None:
    settings = ValkeySettings()
    worst_case = settings.command_timeout
    assert worst_case < 0.1
    assert settings.retries <= 1


def test_settings_are_read_from_the_environment() -> None:
    settings = ValkeySettings.from_env(
        {
            "VALKEY_URL": "redis://h:7000/1",
            "CACHEMW_COMMAND_TIMEOUT": "0.2",
            "CACHEMW_MAX_CONNECTIONS": "8",
            "CACHEMW_KEY_PREFIX": "shop",
        }
    )
    assert settings.url == "redis://h:7000/1"
    assert settings.command_timeout == 0.2
    assert settings.max_connections == 8
    assert settings.key_prefix == "shop"


def test_non_numeric_environment_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="CACHEMW_COMMAND_TIMEOUT"):
        ValkeySettings.from_env({"CACHEMW_COMMAND_TIMEOUT": "fast"})


def test_constructing_a_client_does_no_io() -> None:
    # Nothing listens on port 1; construction must not try to connect.
    Valkey(ValkeySettings(url="redis://127.0.0.1:1/0"))
