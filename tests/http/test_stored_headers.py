"""Header fields a cache stores (RFC 9111 §3.1) and updates from a 304 (§3.2, §4.3.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemw.http.stored_headers import freshen_header_fields, storable_header_fields


@pytest.mark.parametrize(
    "field",
    [
        b"connection",
        b"Keep-Alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
    ],
)
def test_connection_specific_fields_are_not_stored(field: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (field, b"x")]
    assert storable_header_fields(headers) == [(b"content-type", b"text/plain")]


def test_fields_listed_in_connection_are_not_stored() -> None:
    headers = [(b"connection", b"a, B"), (b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    assert storable_header_fields(headers) == [(b"c", b"3")]


def test_fields_named_by_qualified_no_cache_or_private_are_not_stored() -> None:
    headers = [(b"set-cookie", b"s=1"), (b"a", b"1"), (b"b", b"2")]
    assert storable_header_fields(headers, strip_fields=("set-cookie", "a")) == [(b"b", b"2")]


def test_stored_fields_keep_order_and_duplicate_lines() -> None:
    headers = [(b"link", b"<a>"), (b"x", b"1"), (b"link", b"<b>"), (b"set-cookie", b"s=1")]
    assert storable_header_fields(headers) == headers


def test_304_replaces_every_stored_line_of_a_field_it_carries() -> None:
    stored = [(b"etag", b'"1"'), (b"link", b"<a>"), (b"link", b"<b>"), (b"x", b"keep")]
    validation = [(b"Link", b"<c>"), (b"cache-control", b"max-age=60")]
    assert freshen_header_fields(stored, validation) == [
        (b"etag", b'"1"'),
        (b"x", b"keep"),
        (b"Link", b"<c>"),
        (b"cache-control", b"max-age=60"),
    ]


@pytest.mark.parametrize("field", [b"content-type", b"set-cookie", b"expires", b"content-location"])
def test_304_updates_representation_and_control_fields(field: bytes) -> None:
    stored = [(field, b"old"), (b"content-length", b"3")]
    assert freshen_header_fields(stored, [(field, b"new")]) == [
        (b"content-length", b"3"),
        (field, b"new"),
    ]


def test_304_never_updates_content_length_or_connection_fields() -> None:
    stored = [(b"content-length", b"3"), (b"a", b"1")]
    validation = [(b"content-length", b"0"), (b"connection", b"a"), (b"a", b"2")]
    assert freshen_header_fields(stored, validation) == stored


def test_304_without_fields_keeps_stored_fields() -> None:
    stored = [(b"a", b"1")]
    assert freshen_header_fields(stored, []) == stored


field_lines = st.lists(
    st.tuples(st.sampled_from([b"a", b"B", b"connection", b"content-length", b"te"]), st.binary()),
    max_size=6,
)


@given(field_lines, field_lines)
def test_freshened_fields_hold_every_validation_field_and_no_connection_field(
    stored: list[tuple[bytes, bytes]], validation: list[tuple[bytes, bytes]]
) -> None:
    freshened = freshen_header_fields(storable_header_fields(stored), validation)
    names = {name.lower() for name, _ in freshened}
    assert b"connection" not in names
    assert b"te" not in names
    for name, value in validation:
        if name.lower() in (b"a", b"b") and not any(
            n.lower() == b"connection" and name.lower() in v.lower() for n, v in validation
        ):
            assert (name, value) in freshened
