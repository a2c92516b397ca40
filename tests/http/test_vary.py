"""Vary parsing (RFC 9110 §12.5.5, RFC 9111 §4.1) and the Vary merge helper."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemw.http.vary import merge_vary, parse_vary


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], ()),
        ([b""], ()),
        ([b"Accept-Encoding"], ("accept-encoding",)),
        ([b"Accept-Encoding, accept-encoding, User-Agent"], ("accept-encoding", "user-agent")),
        ([b"Accept-Language", "Accept-Encoding"], ("accept-language", "accept-encoding")),
        ([b" , Origin ,,"], ("origin",)),
    ],
)
def test_vary_field_names_are_lower_cased_deduplicated_in_order(
    lines: list[bytes | str], expected: tuple[str, ...]
) -> None:
    assert parse_vary(lines) == expected


@pytest.mark.parametrize("lines", [[b"*"], [b"Accept, *"], [b"Accept", b" * "]])
def test_vary_star_on_any_line_never_matches(lines: list[bytes]) -> None:
    assert parse_vary(lines) is None


@pytest.mark.parametrize("lines", [[b"Accept Encoding"], [b'"Accept"'], [b"Acc\xe9pt"]])
def test_vary_element_that_is_not_a_field_name_never_matches(lines: list[bytes]) -> None:
    assert parse_vary(lines) is None


@given(st.lists(st.text() | st.binary(), max_size=4))
def test_parse_vary_is_total(lines: list[bytes | str]) -> None:
    result = parse_vary(lines)
    assert result is None or all(name == name.lower() for name in result)


@pytest.mark.parametrize(
    ("existing", "extra", "expected"),
    [
        ([], [], None),
        ([b""], [], None),
        ([], ["Accept-Encoding"], b"Accept-Encoding"),
        ([b"Accept-Encoding"], ["accept-encoding"], b"Accept-Encoding"),
        ([b"Accept-Encoding"], ["Cookie"], b"Accept-Encoding, Cookie"),
        ([b"Origin", b"origin, Accept"], ["ACCEPT", "Cookie"], b"Origin, Accept, Cookie"),
        ([b"Accept, *"], ["Cookie"], b"*"),
        ([b"Accept"], ["*"], b"*"),
        ([b" , Accept ,"], [" ", ""], b"Accept"),
    ],
)
def test_merge_vary_is_case_insensitive_without_duplicates_and_star_absorbs(
    existing: list[bytes], extra: list[str], expected: bytes | None
) -> None:
    assert merge_vary(existing, extra) == expected


@given(st.lists(st.text() | st.binary(), max_size=3), st.lists(st.text(), max_size=3))
def test_merge_vary_is_total_and_idempotent(existing: list[bytes | str], extra: list[str]) -> None:
    merged = merge_vary(existing, extra)
    if merged is not None:
        assert merge_vary([merged], []) == merged
        assert merge_vary([merged], extra) == merged


@given(st.lists(st.sampled_from(["Accept", "accept", "Origin", "Cookie", "X-Y"]), max_size=6))
def test_merged_vary_parses_to_every_name_once(names: list[str]) -> None:
    merged = merge_vary([], names)
    expected = tuple(dict.fromkeys(name.lower() for name in names))
    assert parse_vary([] if merged is None else [merged]) == expected
