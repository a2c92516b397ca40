"""Connection URLs: every scheme cachemw accepts, and the errors for the ones it does not."""

from __future__ import annotations

import pytest

from cachemw.valkey.settings import ValkeySettings
from cachemw.valkey.url import ValkeyEndpoint, parse_valkey_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis://localhost",
            ValkeyEndpoint(mode="standalone", hosts=(("localhost", 6379),)),
        ),
        (
            "valkey://10.1.2.3:7000/2",
            ValkeyEndpoint(mode="standalone", hosts=(("10.1.2.3", 7000),), db=2),
        ),
        (
            "rediss://user:p%40ss@cache.example:6380/0",
            ValkeyEndpoint(
                mode="standalone",
                hosts=(("cache.example", 6380),),
                username="user",
                password="p@ss",
                tls=True,
            ),
        ),
        (
            "valkeys://:secret@h?ssl_cert_reqs=none",
            ValkeyEndpoint(
                mode="standalone",
                hosts=(("h", 6379),),
                password="secret",
                tls=True,
                tls_cert_reqs="none",
            ),
        ),
        (
            "unix:///var/run/valkey.sock?db=3",
            ValkeyEndpoint(mode="unix", unix_path="/var/run/valkey.sock", db=3),
        ),
        (
            "redis+cluster://a:7000,b:7001,[::1]:7002",
            ValkeyEndpoint(mode="cluster", hosts=(("a", 7000), ("b", 7001), ("::1", 7002))),
        ),
        (
            "valkeys+cluster://a:7000",
            ValkeyEndpoint(mode="cluster", hosts=(("a", 7000),), tls=True),
        ),
        (
            "redis://a:7000,b:7001?cluster=true",
            ValkeyEndpoint(mode="cluster", hosts=(("a", 7000), ("b", 7001))),
        ),
        (
            "redis://h?client_name=shop",
            ValkeyEndpoint(mode="standalone", hosts=(("h", 6379),), client_name="shop"),
        ),
    ],
)
def test_url_scheme_is_parsed(url: str, expected: ValkeyEndpoint) -> None:
    assert parse_valkey_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost", "scheme must be one of"),
        ("localhost:6379", "scheme must be one of"),
        ("redis://h:99999", "port"),
        ("redis://h:abc", "port"),
        ("redis://h/x", "db"),
        ("redis://a:1,b:2", "several hosts need a cluster URL"),
        ("redis+cluster://a:1/3", "only has db 0"),
        ("unix://", "socket path"),
        ("redis://h?cluster=maybe", "cluster='maybe'"),
        ("rediss://h?ssl_cert_reqs=sometimes", "ssl_cert_reqs"),
    ],
)
def test_invalid_url_fails_naming_the_problem(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_valkey_url(url)


def test_invalid_url_error_never_shows_the_password() -> None:
    with pytest.raises(ValueError, match="port") as caught:
        parse_valkey_url("redis://user:hunter2@h:notaport")
    assert "hunter2" not in str(caught.value)


def test_redacted_endpoint_hides_the_password() -> None:
    endpoint = parse_valkey_url("rediss://user:hunter2@h:6380/1")
    assert "hunter2" not in endpoint.redacted()
    assert endpoint.redacted() == "rediss://***@h:6380/1"


def test_bad_url_in_settings_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="url"):
        ValkeySettings(url="memcached://h")
