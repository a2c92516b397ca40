"""CachePolicy rendering and validation, merging with app headers, the 304 field set."""

from __future__ import annotations

from typing import Any

import pytest

from cachemw.http.policy import (
    CachePolicy,
    PathPolicies,
    merge_cache_control,
    not_modified_headers,
    policy_applies_to_status,
)


def directives(value: bytes) -> set[str]:
    return {part.strip() for part in value.decode().split(",") if part.strip()}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"public": True, "max_age": 60}, {"public", "max-age=60"}),
        ({"private": True, "max_age": 0}, {"private", "max-age=0"}),
        ({"no_store": True}, {"no-store"}),
        ({"no_cache": True}, {"no-cache"}),
        (
            {"public": True, "max_age": 31536000, "immutable": True},
            {"public", "max-age=31536000", "immutable"},
        ),
        (
            {"max_age": 60, "s_maxage": 600, "must_revalidate": True},
            {"max-age=60", "s-maxage=600", "must-revalidate"},
        ),
        (
            {"max_age": 1, "stale_while_revalidate": 30, "stale_if_error": 86400},
            {"max-age=1", "stale-while-revalidate=30", "stale-if-error=86400"},
        ),
    ],
)
def test_policy_renders_each_directive_once(options: dict[str, Any], expected: set[str]) -> None:
    rendered = CachePolicy(**options).cache_control
    assert directives(rendered) == expected
    assert len(rendered.split(b",")) == len(expected)


def test_policy_renders_extra_vary_without_duplicates() -> None:
    policy = CachePolicy(max_age=60, vary=("Accept", "accept", "Accept-Language"))
    assert policy.vary_header == b"Accept, Accept-Language"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_age": -1}, "max_age must be between 0 and 2147483648"),
        ({"s_maxage": 2**31 + 1}, "s_maxage must be between"),
        ({"stale_while_revalidate": 1.5}, "stale_while_revalidate must be an int"),
        ({"stale_if_error": True}, "stale_if_error must be an int"),
        ({"public": True, "private": True}, "public=True and private=True conflict"),
        ({"private": True, "s_maxage": 10}, "s_maxage=10 conflicts with private=True"),
        ({"no_store": True, "max_age": 60}, "no_store=True conflicts with max_age=60"),
        ({"no_store": True, "public": True}, "no_store=True conflicts with public=True"),
        ({"immutable": True}, "immutable=True needs max_age or s_maxage"),
        ({"vary": "Accept"}, "vary must be a tuple"),
        ({"vary": ("Accept Language",)}, "vary entries must be header field names"),
        ({"vary": ("*", "Accept")}, "vary='\\*' must stand alone"),
    ],
)
def test_invalid_policy_raises_naming_the_setting(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CachePolicy(**options)


def test_no_store_with_zero_max_age_is_allowed() -> None:
    rendered = CachePolicy(no_store=True, max_age=0).cache_control
    assert directives(rendered) == {"no-store", "max-age=0"}


# Precedence (module docstring of cachemw.http.policy): no-store > private > public from
# either side; the handler's lifetimes win; flags are unioned; the rest is kept.
@pytest.mark.parametrize(
    ("policy", "app", "expected"),
    [
        (CachePolicy(public=True, max_age=60), b"no-store", {"no-store"}),
        (CachePolicy(public=True, max_age=60, s_maxage=600), b"private", {"private", "max-age=60"}),
        (CachePolicy(private=True, max_age=60), b"public, s-maxage=600", {"private", "max-age=60"}),
        (CachePolicy(no_store=True), b"public, max-age=3600", {"no-store"}),
        (CachePolicy(public=True, max_age=60), b"max-age=5", {"public", "max-age=5"}),
        (
            CachePolicy(public=True, max_age=60, must_revalidate=True),
            b"no-cache, no-transform, x-ext=1",
            {"public", "max-age=60", "must-revalidate", "no-cache", "no-transform", "x-ext=1"},
        ),
        (
            CachePolicy(max_age=60, stale_while_revalidate=30),
            b"max-age=60, MAX-AGE=60",
            {"max-age=60", "stale-while-revalidate=30"},
        ),
    ],
)
def test_merge_with_app_cache_control_follows_documented_precedence(
    policy: CachePolicy, app: bytes, expected: set[str]
) -> None:
    merged = merge_cache_control(policy, [app])
    assert directives(merged) == expected
    assert len(merged.split(b",")) == len(expected)  # nothing duplicated


def test_merge_without_app_cache_control_is_the_prerendered_policy() -> None:
    policy = CachePolicy(public=True, max_age=60)
    assert merge_cache_control(policy, []) is policy.cache_control


@pytest.mark.parametrize(
    ("status", "policy", "applies"),
    [
        (200, CachePolicy(public=True, max_age=60), True),
        (204, CachePolicy(public=True, max_age=60), True),
        (304, CachePolicy(public=True, max_age=60), True),
        (302, CachePolicy(public=True, max_age=60), False),
        (404, CachePolicy(public=True, max_age=60), False),
        (500, CachePolicy(public=True, max_age=60), False),
        (500, CachePolicy(no_store=True), True),
    ],
)
def test_freshness_policy_applies_only_to_2xx_and_304(
    status: int, policy: CachePolicy, applies: bool
) -> None:
    assert policy_applies_to_status(policy, status) is applies


FULL_200_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", b"42"),
    (b"content-encoding", b"gzip"),
    (b"content-language", b"en"),
    (b"last-modified", b"Sun, 06 Nov 1994 08:49:37 GMT"),
    (b"etag", b'"v1"'),
    (b"cache-control", b"max-age=60"),
    (b"vary", b"Accept-Encoding"),
    (b"expires", b"Sun, 06 Nov 1994 08:50:37 GMT"),
    (b"content-location", b"/items/1.json"),
    (b"date", b"Sun, 06 Nov 1994 08:49:37 GMT"),
    (b"set-cookie", b"session=abc"),
    (b"x-powered-by", b"demo"),
]


def test_not_modified_carries_only_allowed_fields() -> None:
    names = [name for name, _ in not_modified_headers(FULL_200_HEADERS)]
    assert names == [
        b"etag",
        b"cache-control",
        b"vary",
        b"expires",
        b"content-location",
        b"date",
        b"set-cookie",
    ]


def test_not_modified_keeps_last_modified_only_without_etag() -> None:
    without_etag = [(n, v) for n, v in FULL_200_HEADERS if n != b"etag"]
    assert (b"last-modified", b"Sun, 06 Nov 1994 08:49:37 GMT") in not_modified_headers(
        without_etag
    )


def test_not_modified_keeps_extra_fields_a_cache_asks_for() -> None:
    headers = [(b"age", b"5"), (b"etag", b'"v1"')]
    keep = frozenset({b"etag", b"age"})
    assert not_modified_headers(headers, keep=keep) == headers


STATIC = CachePolicy(public=True, max_age=31536000, immutable=True)
STATIC_DOCS = CachePolicy(public=True, max_age=60)
HOME = CachePolicy(no_cache=True)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/static/app.js", STATIC),
        ("/static/docs/index.html", STATIC_DOCS),  # longer prefix wins
        ("/", HOME),  # exact
        ("/other", None),
        ("/staticfile", None),
    ],
)
def test_path_rules_pick_the_most_specific_pattern(path: str, expected: CachePolicy | None) -> None:
    rules = PathPolicies({"/static/*": STATIC, "/static/docs/*": STATIC_DOCS, "/": HOME})
    assert rules.policy_for(path) is expected


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"static/*": STATIC}, "must start with '/'"),
        ({"/a/*/b": STATIC}, "'\\*' is allowed only at the end"),
        ({"/a": "max-age=60"}, "must be a CachePolicy"),
        ([("/a", STATIC), ("/a", HOME)], "given twice"),
    ],
)
def test_invalid_path_rules_raise_naming_the_pattern(rules: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PathPolicies(rules)
