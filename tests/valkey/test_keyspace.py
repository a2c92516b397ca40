"""Keys from hostile input are bounded and tag-safe."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemw.valkey.keyspace import Keyspace, digest

KEY_RE = re.compile(r"cachemw:rl:\{[0-9a-f]{32}\}(:[A-Za-z0-9_.:\-]+)?")

HOSTILE = [
    b"{",
    b"}",
    b"{user}",
    b"*",
    b"a\nb\r\n",
    b"\x00",
    b"x" * 65536,
    "naïve {🙂}".encode(),
]


@pytest.mark.parametrize("identity", HOSTILE)
def test_hostile_identity_lands_in_a_bounded_tag_safe_key(identity: bytes) -> None:
    key = Keyspace().key_for("rl", identity, "w60")
    assert KEY_RE.fullmatch(key)
    assert len(key) < 100
    assert key.count("{") == 1
    assert key.count("}") == 1


@given(st.binary(max_size=2048))
def test_any_identity_gives_exactly_one_hex_hash_tag(identity: bytes) -> None:
    key = Keyspace().key_for("rl", identity)
    assert KEY_RE.fullmatch(key)


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_distinct_identities_get_distinct_keys(first: bytes, second: bytes) -> None:
    keyspace = Keyspace()
    if first != second:
        assert keyspace.key_for("rl", first) != keyspace.key_for("rl", second)


def test_digest_is_stable_across_processes() -> None:
    # A literal, not hash(): the same in every process and after restarts.
    assert digest(b"cachemw") == "e12e8f24b4d3bac2edb6f6c90207d5b5"
    assert digest(b"cachemw") == digest("cachemw")


@pytest.mark.parametrize("part", ["{x}", "a b", "*", "", "x\n"])
def test_unsafe_key_part_is_rejected(part: str) -> None:
    with pytest.raises(ValueError, match="safe key part"):
        Keyspace().key("rl", digest(b"x"), part)


def test_raw_text_is_never_accepted_as_a_hash_tag() -> None:
    with pytest.raises(ValueError, match="hash tag"):
        Keyspace().key("rl", "user-42")


def test_configured_prefix_starts_every_key() -> None:
    assert Keyspace("shop").key_for("cache", b"x").startswith("shop:cache:{")
