"""Invalid settings fail at construction, naming the setting."""

from __future__ import annotations

from typing import Any

import pytest

from cachemw.sessions import SessionConfig, SessionCookie


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"same_site": "none", "secure": False, "name": "sid"}, "same_site"),
        ({"domain": "example.com"}, "domain"),
        ({"secure": False}, "secure"),
        ({"path": "/app"}, "path"),
        ({"name": "__Secure-sid", "secure": False}, "secure"),
        ({"name": "bad name"}, "cookie name"),
        ({"name": ""}, "cookie name"),
        ({"name": "sid", "path": "app"}, "path"),
        ({"name": "sid", "path": "/a;b"}, "path"),
        ({"name": "sid", "domain": "exa mple.com"}, "domain"),
        ({"same_site": "Laxx"}, "same_site"),
    ],
)
def test_invalid_cookie_settings_fail_naming_the_setting(
    settings: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        SessionCookie(**settings)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"idle_timeout": 100, "absolute_lifetime": 50}, "absolute_lifetime"),
        ({"absolute_lifetime": 500 * 86400}, "absolute_lifetime"),
        ({"idle_timeout": 10, "refresh_throttle": 10}, "refresh_throttle"),
        ({"refresh_throttle": -1}, "refresh_throttle"),
        ({"max_value_bytes": 0}, "max_value_bytes"),
        ({"max_value_bytes": 10, "max_session_bytes": 5}, "max_session_bytes"),
        ({"clear_site_data": ("everything",)}, "clear_site_data"),
        ({"retry_after": -1}, "retry_after"),
        ({"store_timeout": 0}, "store_timeout"),
        ({"cookie": "sid"}, "cookie"),
    ],
)
def test_invalid_session_settings_fail_naming_the_setting(
    settings: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        SessionConfig(**settings)


def test_default_cookie_follows_owasp() -> None:
    cookie = SessionCookie()
    assert cookie.name.startswith("__Host-")
    assert (cookie.secure, cookie.http_only, cookie.same_site, cookie.path, cookie.domain) == (
        True,
        True,
        "lax",
        "/",
        None,
    )
    assert cookie.persistent is False


def test_plain_http_development_cookie_is_allowed() -> None:
    assert SessionCookie(name="sid", secure=False).secure is False


def test_middleware_without_a_session_store_fails_at_construction() -> None:
    from cachemw.sessions import SessionMiddleware  # noqa: PLC0415

    with pytest.raises(ValueError, match="store"):
        SessionMiddleware(object(), store="redis://localhost")  # type: ignore[arg-type]


@pytest.mark.parametrize("replicas", [-1, 65, 1.5, True, "1", None])
def test_invalid_logout_replicas_fails_naming_the_setting(replicas: object) -> None:
    with pytest.raises(ValueError, match="logout_replicas"):
        SessionConfig(logout_replicas=replicas)  # type: ignore[arg-type]


@pytest.mark.parametrize("replicas", [0, 1, 64])
def test_logout_replicas_accepts_zero_to_sixty_four(replicas: int) -> None:
    assert SessionConfig(logout_replicas=replicas).logout_replicas == replicas
