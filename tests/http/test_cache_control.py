"""Cache-Control (RFC 9111 §5.2) and Pragma (§5.4) parsing and formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemw.http.cache_control import (
    MAX_DELTA_SECONDS,
    CacheControl,
    format_cache_control,
    parse_cache_control,
    parse_pragma_no_cache,
)


def parse(*lines: bytes | str) -> CacheControl:
    return parse_cache_control(lines)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"max-age=60", CacheControl(max_age=60)),
        (b"s-maxage=60", CacheControl(s_maxage=60)),
        (b"max-stale=5", CacheControl(max_stale=5)),
        (b"min-fresh=5", CacheControl(min_fresh=5)),
        (b"stale-while-revalidate=30", CacheControl(stale_while_revalidate=30)),
        (b"stale-if-error=300", CacheControl(stale_if_error=300)),
        (b"no-cache", CacheControl(no_cache=True)),
        (b"no-store", CacheControl(no_store=True)),
        (b"no-transform", CacheControl(no_transform=True)),
        (b"only-if-cached", CacheControl(only_if_cached=True)),
        (b"must-revalidate", CacheControl(must_revalidate=True)),
        (b"proxy-revalidate", CacheControl(proxy_revalidate=True)),
        (b"must-understand", CacheControl(must_understand=True)),
        (b"public", CacheControl(public=True)),
        (b"private", CacheControl(private=True)),
        (b"immutable", CacheControl(immutable=True)),
        (b"", CacheControl()),
        (b" , ,, ", CacheControl()),
    ],
)
def test_every_rfc9111_directive_is_recognised(value: bytes, expected: CacheControl) -> None:
    assert parse(value) == expected


def test_directive_names_are_case_insensitive() -> None:
    assert parse(b"MAX-AGE=60, No-Store, PUBLIC") == CacheControl(
        max_age=60, no_store=True, public=True
    )


@pytest.mark.parametrize(
    "value", [b'max-age="60"', b'max-age="60" ', b"max-age=60 ", b"max-age=060"]
)
def test_quoted_string_argument_is_accepted_for_delta_seconds(value: bytes) -> None:
    assert parse(value).max_age == 60


@pytest.mark.parametrize(
    "value",
    [b"max-age =60", b"max-age= 60", b"max-age = 60", b'max-age= "60"', b'max-age="60"0'],
)
def test_whitespace_around_equals_makes_max_age_invalid(value: bytes) -> None:
    # The grammar has no whitespace around "="; http-cache-tests requires ignoring it.
    assert parse(value).max_age == 0


def test_max_age_inside_an_extensions_quoted_string_is_ignored() -> None:
    assert parse(b'extension="max-age=100", max-age=1').max_age == 1
    assert parse(b'max-age="1", extension="max-age=100"').max_age == 1


@pytest.mark.parametrize(
    "value",
    [
        b"max-age=abc",
        b"max-age=-1",
        b"max-age",
        b"max-age=",
        b"max-age=1.5",
        b'max-age="1 2"',
        b"max-age='60'",
        b"max-age=a100",
        b"max-age=100a",
    ],
)
def test_invalid_max_age_means_stale(value: bytes) -> None:
    assert parse(value).max_age == 0


def test_invalid_s_maxage_means_stale() -> None:
    assert parse(b"s-maxage=soon").s_maxage == 0


@pytest.mark.parametrize(
    "value",
    [b"min-fresh=x", b"stale-while-revalidate", b"stale-if-error=-5", b"max-stale=1.5"],
)
def test_invalid_request_and_stale_windows_are_ignored(value: bytes) -> None:
    assert parse(value) == CacheControl()


def test_duplicate_directive_keeps_first_occurrence() -> None:
    assert parse(b"max-age=60, max-age=10").max_age == 60


def test_duplicate_directive_across_field_lines_keeps_first_occurrence() -> None:
    assert parse(b"max-age=60", b"max-age=10, public") == CacheControl(max_age=60, public=True)


@pytest.mark.parametrize("value", [b"max-age=2147483648", b"max-age=99999999999999999999999"])
def test_delta_seconds_overflow_clamps_to_2147483648(value: bytes) -> None:
    assert parse(value).max_age == MAX_DELTA_SECONDS


def test_max_stale_without_value_accepts_any_staleness() -> None:
    assert parse(b"max-stale").max_stale == MAX_DELTA_SECONDS


def test_qualified_no_cache_names_fields_without_unqualified_no_cache() -> None:
    cc = parse(b'no-cache="Set-Cookie, X-Trace", max-age=5')
    assert cc == CacheControl(no_cache_fields=("set-cookie", "x-trace"), max_age=5)


def test_qualified_private_names_fields_without_unqualified_private() -> None:
    assert parse(b"private=Set-Cookie").private_fields == ("set-cookie",)
    assert parse(b"private=Set-Cookie").private is False


@pytest.mark.parametrize("value", [b'no-cache=""', b'no-cache=" , "', b'no-cache="{}"'])
def test_qualified_no_cache_without_usable_fields_is_unqualified(value: bytes) -> None:
    assert parse(value) == CacheControl(no_cache=True)


def test_quoted_pair_in_argument_is_unescaped() -> None:
    assert parse(b'ext="a\\"b, c", max-age=1') == CacheControl(
        extensions=(("ext", 'a"b, c'),), max_age=1
    )


def test_unterminated_quoted_string_takes_the_rest_of_the_line() -> None:
    assert parse(b'ext="abc, max-age=1').extensions == (("ext", "abc, max-age=1"),)


def test_unknown_extensions_are_kept_in_order() -> None:
    assert parse(b'community="UCI", foo, Bar=1, foo').extensions == (
        ("community", "UCI"),
        ("foo", None),
        ("bar", "1"),
        ("foo", None),
    )


@pytest.mark.parametrize("value", [b"a b", b"{x}", b'"quoted"', b"caf\xe9"])
def test_directive_name_that_is_not_a_token_is_dropped(value: bytes) -> None:
    assert parse(value + b", max-age=5") == CacheControl(max_age=5)


def test_multiple_field_lines_are_combined() -> None:
    assert parse(b"public", "max-age=60", b"", b"immutable") == CacheControl(
        public=True, max_age=60, immutable=True
    )


def test_format_uses_canonical_order() -> None:
    cc = parse(b"foo=bar baz, max-age=60, no-cache=Set-Cookie, immutable, public, max-stale")
    assert format_cache_control(cc) == (
        b'public, no-cache="set-cookie", immutable, max-age=60, max-stale, foo="bar baz"'
    )


def test_format_of_no_directives_is_empty() -> None:
    assert format_cache_control(CacheControl()) == b""


def test_format_round_trips_every_field() -> None:
    cc = CacheControl(
        max_age=1,
        s_maxage=2,
        max_stale=3,
        min_fresh=4,
        stale_while_revalidate=5,
        stale_if_error=6,
        no_cache=True,
        no_cache_fields=("a",),
        no_store=True,
        no_transform=True,
        only_if_cached=True,
        must_revalidate=True,
        proxy_revalidate=True,
        must_understand=True,
        public=True,
        private=True,
        private_fields=("b", "c"),
        immutable=True,
        extensions=(("x", None), ("y", ""), ("z", 'q"\\')),
    )
    assert parse(format_cache_control(cc)) == cc


DIRECTIVE_NAMES = [
    "max-age",
    "s-maxage",
    "max-stale",
    "min-fresh",
    "stale-while-revalidate",
    "stale-if-error",
    "no-cache",
    "private",
    "no-store",
    "public",
    "must-understand",
    "ext",
]
directive_like = st.lists(
    st.tuples(
        st.sampled_from(DIRECTIVE_NAMES) | st.text(max_size=5),
        st.none() | st.text(max_size=8) | st.integers(-5, 2**40).map(str),
        st.booleans(),
    ),
    max_size=6,
).map(
    lambda items: ", ".join(
        name if value is None else f'{name}="{value}"' if quoted else f"{name}={value}"
        for name, value, quoted in items
    )
)


@given(st.lists(st.text() | directive_like, max_size=4))
def test_parse_cache_control_is_total_on_text(lines: list[str]) -> None:
    assert isinstance(parse_cache_control(lines), CacheControl)


@given(st.lists(st.binary() | directive_like.map(str.encode), max_size=4))
def test_format_of_parse_is_stable_for_bytes(lines: list[bytes]) -> None:
    parsed = parse_cache_control(lines)
    formatted = format_cache_control(parsed)
    assert parse_cache_control([formatted]) == parsed
    assert format_cache_control(parse_cache_control([formatted])) == formatted


@given(st.lists(st.text() | directive_like, max_size=4))
def test_format_of_parse_is_stable_for_text(lines: list[str]) -> None:
    formatted = format_cache_control(parse_cache_control(lines))
    assert format_cache_control(parse_cache_control([formatted])) == formatted


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b"no-cache"], True),
        ([b"No-Cache"], True),
        ([b"foo, no-cache"], True),
        ([b"foo", b" no-cache "], True),
        ([b'no-cache="x"'], False),
        ([b"foo=no-cache"], False),
        ([], False),
    ],
)
def test_pragma_no_cache_is_detected(lines: list[bytes], expected: bool) -> None:
    assert parse_pragma_no_cache(lines) is expected


@given(st.lists(st.text() | st.binary(), max_size=3))
def test_parse_pragma_is_total(lines: list[bytes | str]) -> None:
    assert isinstance(parse_pragma_no_cache(lines), bool)
