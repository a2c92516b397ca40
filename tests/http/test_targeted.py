"""Targeted cache-control fields, e.g. CDN-Cache-Control (RFC 9213; RFC 8941 Dictionary)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemw.http.cache_control import MAX_DELTA_SECONDS, CacheControl
from cachemw.http.targeted import parse_targeted_cache_control


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b"max-age=3600"], CacheControl(max_age=3600)),
        ([b"max-age=99999999999"], CacheControl(max_age=MAX_DELTA_SECONDS)),
        ([b"foobar, max-age=3600"], CacheControl(max_age=3600, extensions=(("foobar", None),))),
        ([b"private"], CacheControl(private=True)),
        ([b"no-cache"], CacheControl(no_cache=True)),
        ([b"no-store"], CacheControl(no_store=True)),
        ([b"max-age=60", b"stale-while-revalidate=30"], CacheControl(
            max_age=60, stale_while_revalidate=30
        )),
        ([b"max-age=60;foo=bar, public;x"], CacheControl(max_age=60, public=True)),
        ([b"no-store=?0, max-age=5"], CacheControl(max_age=5)),
        ([b'private="Set-Cookie"'], CacheControl(private_fields=("set-cookie",))),
        ([b'no-cache=("a" "b")'], CacheControl(no_cache_fields=("a", "b"))),
        ([b"no-cache=1"], CacheControl(no_cache=True)),
        ([b"max-age=1, max-age=7"], CacheControl(max_age=7)),  # RFC 8941: last value wins
        ([b"  max-age=5  "], CacheControl(max_age=5)),
    ],
)  # fmt: skip
def test_valid_targeted_field_gives_its_directives(
    lines: list[bytes], expected: CacheControl
) -> None:
    assert parse_targeted_cache_control(lines) == expected


@pytest.mark.parametrize(
    "lines",
    [
        [],
        [b""],
        [b"   "],
        [b"max-age=10000, &&&&&"],
        [b"max-age =100"],
        [b"max-age= 100"],
        [b"MaX-aGe=3600"],
        [b"max-age=1,"],
        [b",max-age=1"],
        [b"max-age=1234567890123456"],
        [b'ext="unterminated'],
        [b'ext="bad \\n escape"'],
        [b"ext=:not*base64:"],
        [b"ext=?2"],
        [b"ext=(a b"],
        [b"max-age=1 public"],
        ["max-age=1, caf\u00e9"],
    ],
)
def test_absent_empty_or_invalid_targeted_field_falls_back_to_cache_control(
    lines: list[bytes | str],
) -> None:
    assert parse_targeted_cache_control(lines) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'max-age="10000"', CacheControl(max_age=0)),
        (b"max-age=1.5", CacheControl(max_age=0)),
        (b"max-age=-1", CacheControl(max_age=0)),
        (b"s-maxage=?1", CacheControl(s_maxage=0)),
        (b"stale-if-error=abc", CacheControl()),
    ],
)
def test_wrong_typed_freshness_directive_means_stale_and_others_are_ignored(
    value: bytes, expected: CacheControl
) -> None:
    assert parse_targeted_cache_control([value]) == expected


@given(st.lists(st.text() | st.binary(), max_size=3))
def test_parse_targeted_cache_control_is_total(lines: list[bytes | str]) -> None:
    result = parse_targeted_cache_control(lines)
    assert result is None or isinstance(result, CacheControl)


sf_members = st.lists(
    st.sampled_from(
        [
            "max-age=60",
            "s-maxage=0",
            "private",
            'no-cache="a"',
            "x;p=1",
            "y=(1 2)",
            "z=:AAA=:",
            "w=-1.25",
            "v=?1",
            "u=tok/en",
            "*k",
        ]
    ),
    min_size=1,
    max_size=5,
)


@given(sf_members)
def test_every_well_formed_dictionary_is_accepted(members: list[str]) -> None:
    assert parse_targeted_cache_control([", ".join(members)]) is not None
