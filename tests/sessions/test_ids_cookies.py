"""Session ids and the Cookie header: strict, total, never adopting what a client made up."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from cachemw.sessions import SessionConfig, SessionCookie
from cachemw.sessions.cookies import CookieCodec
from cachemw.sessions.ids import (
    SESSION_FEATURE,
    SessionRef,
    is_well_formed_id,
    new_session_id,
    rotated_session_id,
    session_ref,
)
from cachemw.valkey import Keyspace

CODEC = CookieCodec(SessionConfig())
NAME = SessionCookie().name


def test_new_ids_carry_384_random_bits_in_64_urlsafe_characters() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{64}", i) for i in ids)


def test_rotated_id_keeps_family_and_replaces_288_bit_secret() -> None:
    old = new_session_id()
    new = rotated_session_id(old)
    assert new[:16] == old[:16]
    assert new[16:] != old[16:]
    assert is_well_formed_id(new.encode())
    assert session_ref(old).tag == session_ref(new).tag


def test_handle_round_trips_and_rejects_junk() -> None:
    ref = session_ref(new_session_id())
    assert SessionRef.from_handle(ref.handle) == ref
    assert SessionRef.from_handle("x" * 49) is None
    assert SessionRef.from_handle(ref.handle + "}") is None


def test_cookie_with_well_formed_id_is_read() -> None:
    sid = new_session_id()
    reading = CODEC.read([(b"cookie", f"a=1; {NAME}={sid}; b=2".encode())])
    assert (reading.session_id, reading.present) == (sid, True)


def test_cookie_split_over_two_header_lines_is_read() -> None:
    sid = new_session_id()
    reading = CODEC.read([(b"cookie", b"a=1"), (b"cookie", f"{NAME}={sid}".encode())])
    assert reading.session_id == sid


def test_duplicated_session_cookie_is_no_session() -> None:
    a, b = new_session_id(), new_session_id()
    reading = CODEC.read([(b"cookie", f"{NAME}={a}; {NAME}={b}".encode())])
    assert (reading.session_id, reading.present) == (None, True)


def test_similarly_named_cookie_is_ignored() -> None:
    sid = new_session_id()
    reading = CODEC.read([(b"cookie", f"x{NAME}={sid}".encode())])
    assert (reading.session_id, reading.present) == (None, False)


@given(st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=200)), max_size=5))
def test_reading_any_headers_never_raises_and_only_accepts_well_formed_ids(
    headers: list[tuple[bytes, bytes]],
) -> None:
    reading = CODEC.read([(b"cookie", value) for _, value in headers] + headers)
    if reading.session_id is not None:
        assert is_well_formed_id(reading.session_id.encode())


@given(st.text(max_size=100))
def test_cookie_value_other_than_64_urlsafe_characters_is_rejected(value: str) -> None:
    raw = value.encode("utf-8", "surrogatepass")
    accepted = is_well_formed_id(raw)
    assert accepted == bool(re.fullmatch(rb"[A-Za-z0-9_-]{64}", raw))


def test_set_cookie_attribute_string_is_precomputed_and_exact() -> None:
    assert CODEC.set_cookie("A" * 64) == (
        f"{NAME}={'A' * 64}; Path=/; Secure; HttpOnly; SameSite=Lax".encode()
    )


def test_cookie_with_domain_and_strict_same_site() -> None:
    config = SessionConfig(
        cookie=SessionCookie(name="sid", domain="example.com", same_site="strict")
    )
    assert (
        CookieCodec(config)
        .set_cookie("A" * 64)
        .endswith(b"; Path=/; Domain=example.com; Secure; HttpOnly; SameSite=Strict")
    )


@given(st.sampled_from(["cachemw", "shop.v2-eu", "a"]))
def test_session_key_follows_the_keyspace_naming(prefix: str) -> None:
    ref = session_ref(new_session_id())
    keyspace = Keyspace(prefix)
    assert ref.key(keyspace) == keyspace.key(SESSION_FEATURE, ref.tag, ref.id_digest)
