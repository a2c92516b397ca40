"""The stored entry format: versioned msgpack, optional compression and HMAC signing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemw.cache import CachedResponse, EntryCodec

HEADER = st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40))


def entry(body: bytes = b"body", **overrides: object) -> CachedResponse:
    values: dict[str, object] = {
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"link", b"</a>"), (b"link", b"</b>")],
        "body": body,
        "request_time": 1.5,
        "response_time": 2.5,
        "tags": ("t1",),
        "cache_control": b"max-age=60",
        "etag": b'"x"',
    }
    values.update(overrides)
    return CachedResponse(**values)  # type: ignore[arg-type]


@given(
    status=st.integers(200, 599),
    headers=st.lists(HEADER, max_size=8),
    body=st.binary(max_size=2048),
    compress=st.booleans(),
    sign=st.booleans(),
)
def test_entry_round_trips_exactly(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, compress: bool, sign: bool
) -> None:
    codec = EntryCodec(
        compress_min_size=0 if compress else None, signing_key=b"k" * 32 if sign else None
    )
    original = entry(body, status=status, headers=headers)
    assert codec.decode(codec.encode(original)) == original


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"CM",
        b"XX\x01\x00abc",
        b"CM\x02\x00abc",
        b"CM\x01\x00not msgpack",
        b"CM\x01\x01zz",
    ],
)
def test_unknown_or_corrupt_entry_is_a_miss(raw: bytes | None) -> None:
    assert EntryCodec().decode(raw) is None


def test_large_bodies_are_compressed() -> None:
    codec = EntryCodec(compress_min_size=1024)
    body = b"a" * 100_000
    encoded = codec.encode(entry(body))
    assert len(encoded) < 10_000
    decoded = codec.decode(encoded)
    assert decoded is not None
    assert decoded.body == body


def test_signed_entry_with_a_forged_payload_is_a_miss() -> None:
    codec = EntryCodec(signing_key=b"s" * 32)
    encoded = bytearray(codec.encode(entry(b"genuine")))
    encoded[-3] ^= 0xFF
    assert codec.decode(bytes(encoded)) is None


def test_unsigned_entry_is_a_miss_when_signing_is_required() -> None:
    unsigned = EntryCodec().encode(entry())
    assert EntryCodec(signing_key=b"s" * 32).decode(unsigned) is None


def test_entry_signed_with_another_key_is_a_miss() -> None:
    encoded = EntryCodec(signing_key=b"a" * 32).encode(entry())
    assert EntryCodec(signing_key=b"b" * 32).decode(encoded) is None


def test_short_signing_key_is_refused() -> None:
    with pytest.raises(ValueError, match="signing_key"):
        EntryCodec(signing_key=b"short")
