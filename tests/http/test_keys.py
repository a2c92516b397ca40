"""Cache-key derivation: injective primary keys (RFC 9111 §2) and variant keys (§4.1)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from cachemw.http.keys import normalize_host, primary_cache_key, query_params, variant_key


def key(**overrides: Any) -> bytes:
    request: dict[str, Any] = {
        "method": "GET",
        "scheme": "https",
        "host": b"example.com",
        "root_path": "",
        "raw_path": b"/a",
        "query_string": b"",
    }
    request.update(overrides)
    return primary_cache_key(**request)


@pytest.mark.parametrize(
    ("host", "scheme", "expected"),
    [
        (b"Example.COM", "https", b"example.com"),
        (b"example.com:443", "https", b"example.com"),
        (b"example.com:80", "http", b"example.com"),
        (b"example.com:80", "https", b"example.com:80"),
        (b"example.com:0443", "https", b"example.com"),
        (b"example.com:8080", "http", b"example.com:8080"),
        (b"example.com:", "http", b"example.com"),
        (b"[::1]:443", "https", b"[::1]"),
        (b"[::1]:8443", "https", b"[::1]:8443"),
        (b"[::1]", "https", b"[::1]"),
        (b"[::1", "https", b"[::1"),
        (b"example.com:http", "http", b"example.com:http"),
        (b"", "http", b""),
        (b"a::80", "http", b"a::80"),
        (b"::1", "http", b"::1"),
    ],
)
def test_host_is_lower_cased_and_default_port_dropped(
    host: bytes, scheme: str, expected: bytes
) -> None:
    assert normalize_host(host, scheme) == expected


@given(st.binary(max_size=30), st.sampled_from(["http", "https", "ws", "wss", "HTTP", ""]))
def test_normalize_host_is_total_and_idempotent(host: bytes, scheme: str) -> None:
    once = normalize_host(host, scheme)
    assert normalize_host(once, scheme) == once


def test_key_is_a_hex_digest() -> None:
    digest = key()
    assert len(digest) == 32
    assert int(digest, 16) >= 0


def test_get_and_head_share_a_key() -> None:
    assert key(method="GET") == key(method="HEAD")


@pytest.mark.parametrize("method", ["POST", "get", "PUT", "QUERY"])
def test_other_methods_are_part_of_the_key(method: str) -> None:
    assert key(method=method) != key(method="GET")


def test_scheme_is_part_of_the_key() -> None:
    assert key(scheme="http") != key(scheme="https")


def test_host_and_port_are_part_of_the_key() -> None:
    assert key(host=b"example.com") != key(host=b"example.org")
    assert key(host=b"example.com:8443") != key(host=b"example.com")


def test_default_port_and_host_case_share_a_key() -> None:
    assert key(host=b"EXAMPLE.com:443") == key(host=b"example.com")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"raw_path": b"/a%2Fb"}, {"raw_path": b"/a/b"}),  # never percent-decoded
        ({"raw_path": b"/%41"}, {"raw_path": b"/A"}),
        ({"raw_path": b"/a/b"}, {"raw_path": b"/a:b"}),  # fastapi-redis-sdk collision
        ({"raw_path": b"/a", "query_string": b"b=1"}, {"raw_path": b"/ab=1"}),  # Litestar
        ({"raw_path": b"/a?b=1"}, {"raw_path": b"/a", "query_string": b"b=1"}),
        ({"root_path": "/a", "raw_path": b"/b"}, {"raw_path": b"/a/b"}),
        ({"raw_path": b"/a", "query_string": b""}, {"raw_path": b"/a", "query_string": b"?"}),
        ({"host": b"a:1", "raw_path": b"/"}, {"host": b"a", "raw_path": b":1/"}),
    ],
)
def test_requests_that_differ_in_the_target_never_share_a_key(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    assert key(**first) != key(**second)


def test_raw_query_order_is_part_of_the_key_by_default() -> None:
    assert key(query_string=b"a=1&b=2") != key(query_string=b"b=2&a=1")


def test_normalized_query_ignores_order_between_names() -> None:
    assert key(query_string=b"a=1&b=2", normalize_query=True) == key(
        query_string=b"b=2&a=1", normalize_query=True
    )


def test_normalized_query_keeps_order_of_one_names_values() -> None:
    assert key(query_string=b"a=1&a=2", normalize_query=True) != key(
        query_string=b"a=2&a=1", normalize_query=True
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [(b"a", b"a="), (b"a=%20", b"a=+"), (b"a=1&&b=2", b"b=2&a=1"), (b"x=%41", b"x=A")],
)
def test_normalized_query_merges_what_starlette_reads_identically(
    first: bytes, second: bytes
) -> None:
    assert key(query_string=first, normalize_query=True) == key(
        query_string=second, normalize_query=True
    )


def test_normalized_and_raw_queries_never_share_a_key() -> None:
    assert key(query_string=b"a=1", normalize_query=True) != key(query_string=b"a=1")


query_bytes = st.binary(max_size=30) | st.lists(
    st.sampled_from([b"a", b"b", b"=", b"&", b"+", b"%", b"%2", b"%41", b"%e9", b"\xe9", b";"]),
    max_size=10,
).map(b"".join)


@given(query_bytes)
def test_query_params_equal_starlettes_query_params(query_string: bytes) -> None:
    assert query_params(query_string) == QueryParams(query_string).multi_items()


@given(query_bytes, query_bytes)
def test_normalized_query_key_equal_iff_starlette_sees_the_same_params(
    first: bytes, second: bytes
) -> None:
    def seen(query_string: bytes) -> list[tuple[str, str]]:
        return sorted(QueryParams(query_string).multi_items(), key=lambda pair: pair[0])

    same_key = key(query_string=first, normalize_query=True) == key(
        query_string=second, normalize_query=True
    )
    assert same_key == (seen(first) == seen(second))


TRICKY = ["", ":", "0:", "1:", "{}", "{", "}", "\x00", "\n", "\r\n", "/", "?", "&", "=", ",", "%"]
tricky_text = st.lists(st.sampled_from(TRICKY) | st.text(max_size=3), max_size=4).map("".join)
tricky_bytes = tricky_text.map(lambda text: text.encode("utf-8", "surrogatepass"))
requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "HEAD", "POST"]) | tricky_text,
        "scheme": st.sampled_from(["http", "https"]),
        "host": tricky_bytes,
        "root_path": tricky_text,
        "raw_path": tricky_bytes,
        "query_string": tricky_bytes,
    }
)


def canonical(request: dict[str, Any]) -> tuple[Any, ...]:
    method = "GET" if request["method"] in ("GET", "HEAD") else request["method"]
    return (
        method,
        request["scheme"],
        normalize_host(request["host"], request["scheme"]),
        request["root_path"],
        request["raw_path"],
        request["query_string"],
    )


@given(requests, requests)
def test_primary_key_is_injective_over_tricky_components(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    assert (primary_cache_key(**first) == primary_cache_key(**second)) == (
        canonical(first) == canonical(second)
    )


def test_variant_key_distinguishes_absent_from_empty() -> None:
    assert variant_key(("accept",), []) != variant_key(("accept",), [(b"accept", b"")])


def test_variant_key_ignores_headers_not_varied_on() -> None:
    assert variant_key(("accept",), [(b"accept", b"a"), (b"cookie", b"x")]) == variant_key(
        ("accept",), [(b"accept", b"a")]
    )


def test_variant_key_combines_multiple_field_lines() -> None:
    assert variant_key(("accept",), [(b"accept", b"a"), (b"accept", b" b")]) == variant_key(
        ("accept",), [(b"accept", b"a, b")]
    )


def test_variant_key_keeps_order_of_field_lines() -> None:
    assert variant_key(("accept",), [(b"accept", b"a"), (b"accept", b"b")]) != variant_key(
        ("accept",), [(b"accept", b"b"), (b"accept", b"a")]
    )


def test_variant_key_matches_header_names_case_insensitively() -> None:
    assert variant_key(("accept",), [(b"Accept", b"a")]) == variant_key(
        ("accept",), [(b"accept", b"a")]
    )


def test_variant_key_trims_surrounding_whitespace_only() -> None:
    headers = [(b"accept", b" text/html \t")]
    assert variant_key(("accept",), headers) == variant_key(
        ("accept",), [(b"accept", b"text/html")]
    )
    assert variant_key(("accept",), [(b"accept", b"a,b")]) != variant_key(
        ("accept",), [(b"accept", b"a, b")]
    )


def test_no_vary_gives_one_constant_variant() -> None:
    assert variant_key((), [(b"accept", b"a")]) == variant_key((), [])


header_value = tricky_bytes.map(lambda value: value.strip(b" \t"))
header_sets = st.dictionaries(
    st.sampled_from([b"accept", b"accept-language", b"x-a"]),
    st.lists(header_value, min_size=1, max_size=2),
    max_size=3,
)


@given(header_sets, header_sets)
def test_variant_key_is_injective_over_tricky_values(
    first: dict[bytes, list[bytes]], second: dict[bytes, list[bytes]]
) -> None:
    vary = ("accept", "accept-language", "x-a")

    def headers(values: dict[bytes, list[bytes]]) -> list[tuple[bytes, bytes]]:
        return [(name, value) for name, lines in values.items() for value in lines]

    def combined(values: dict[bytes, list[bytes]]) -> dict[bytes, bytes]:
        return {name: b", ".join(lines) for name, lines in values.items()}

    assert (variant_key(vary, headers(first)) == variant_key(vary, headers(second))) == (
        combined(first) == combined(second)
    )
