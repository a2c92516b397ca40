"""Configuration is validated once, with errors that name the setting."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemw.cache import CacheSettings, RouteCache
from cachemw.cache.request import analyse_request, field_kinds
from cachemw.http.surrogate import targeted_cache_control


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"max_body_size": -1}, "max_body_size"),
        ({"max_variants": 0}, "max_variants"),
        ({"lock_ttl": 0}, "lock_ttl"),
        ({"coalesce_wait": -1}, "coalesce_wait"),
        ({"xfetch_beta": -0.5}, "xfetch_beta"),
        ({"forwarding_headers": "x-forwarded-host"}, "forwarding_headers"),
        ({"keyed_headers": ("bad header",)}, "keyed_headers"),
        ({"tag_header": "no spaces allowed"}, "tag_header"),
        ({"routes": {"no-slash": RouteCache()}}, "routes"),
        ({"routes": {"/a*b": RouteCache()}}, "routes"),
        ({"cache_name": "two words"}, "cache_name"),
    ],
)
def test_invalid_cache_setting_names_the_setting(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        CacheSettings(**options)


@pytest.mark.parametrize(
    ("options", "setting"),
    [({"default_ttl": -1}, "default_ttl"), ({"tags": "one"}, "tags"), ({"tags": ("",)}, "tags")],
)
def test_invalid_route_setting_names_the_setting(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        RouteCache(**options)


def test_most_specific_route_rule_wins() -> None:
    exact, prefix, longer = RouteCache(default_ttl=1), RouteCache(), RouteCache(default_ttl=3)
    rules = CacheSettings(routes={"/a": exact, "/a*": prefix, "/a/b/*": longer}).rules
    assert rules.route_for("/a") is exact
    assert rules.route_for("/a/x") is prefix
    assert rules.route_for("/a/b/c") is longer
    assert rules.route_for("/z").enabled


def test_route_rules_match_the_path_below_the_root_path() -> None:
    static = RouteCache(default_ttl=600)
    settings = CacheSettings(routes={"/static/*": static})
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/api/static/a.css",
        "raw_path": b"/api/static/a.css",
        "query_string": b"",
        "root_path": "/api",
        "headers": [(b"host", b"shop.test")],
    }
    assert analyse_request(scope, settings, field_kinds(settings)).route is static


HEADERS = st.lists(st.tuples(st.binary(max_size=30), st.binary(max_size=60)), max_size=20)
SETTINGS = CacheSettings()
KINDS = field_kinds(SETTINGS)


@given(headers=HEADERS, path=st.binary(max_size=300), query=st.binary(max_size=100))
def test_request_analysis_never_raises_on_hostile_input(
    headers: list[tuple[bytes, bytes]], path: bytes, query: bytes
) -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": path.decode("latin-1"),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
    }
    request = analyse_request(scope, SETTINGS, KINDS)
    assert request.bypass is not None or len(request.primary_key) == 32


TARGETED_HEADERS = st.lists(
    st.tuples(
        st.sampled_from([b"cdn-cache-control", b"surrogate-control", b"cache-control"]),
        st.binary(max_size=60),
    ),
    max_size=6,
)


@given(headers=st.one_of(HEADERS, TARGETED_HEADERS))
def test_targeted_cache_control_never_raises(headers: list[tuple[bytes, bytes]]) -> None:
    targeted = targeted_cache_control(headers)
    assert targeted is None or all(isinstance(line, bytes) for line in targeted.lines)
