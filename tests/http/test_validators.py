"""Entity-tags and conditional-request evaluation (RFC 9110 §8.8, §13)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemw.http.validators import (
    EntityTag,
    EntityTagList,
    PreconditionOutcome,
    RequestConditions,
    _scan_members,
    entity_tag_for_body,
    entity_tag_value_for_body,
    evaluate_preconditions,
    format_entity_tag_list,
    parse_entity_tag,
    parse_entity_tag_list,
    response_validators,
    strong_match,
    weak_match,
)

PROCEED = PreconditionOutcome.PROCEED
NOT_MODIFIED = PreconditionOutcome.NOT_MODIFIED
FAILED = PreconditionOutcome.PRECONDITION_FAILED

LAST_MODIFIED = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
LAST_MODIFIED_DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER_DATE = b"Sun, 06 Nov 1994 08:49:36 GMT"
LATER_DATE = b"Sun, 06 Nov 1994 08:49:38 GMT"
NOW = 1795000000.0
CURRENT = EntityTag(b"v2")
WEAK_CURRENT = EntityTag(b"v2", weak=True)

etagc = st.sampled_from([0x21, *range(0x23, 0x7F), *range(0x80, 0x100)])
opaque_tags = st.lists(etagc, max_size=12).map(bytes)
entity_tags = st.builds(EntityTag, opaque_tags, st.booleans())


# --- entity-tag syntax (§8.8.3) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'"xyzzy"', EntityTag(b"xyzzy")),
        (b'W/"xyzzy"', EntityTag(b"xyzzy", weak=True)),
        (b'""', EntityTag(b"")),
        (b'  "a,b"  ', EntityTag(b"a,b")),  # a comma is a legal etagc
        ('"caf\u00e9"', EntityTag("caf\u00e9".encode())),  # obs-text
    ],
)
def test_valid_etag_field_is_parsed(value: bytes | str, expected: EntityTag) -> None:
    assert parse_entity_tag(value) == expected


@pytest.mark.parametrize(
    "value",
    [b"xyzzy", b'w/"x"', b'"unterminated', b'"a" "b"', b'"a", "b"', b'"sp ace"', b"*", b""],
)
def test_invalid_etag_field_is_none(value: bytes) -> None:
    assert parse_entity_tag(value) is None


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b'"a", "b"'], EntityTagList((EntityTag(b"a"), EntityTag(b"b")))),
        ([b'W/"a",  "b" ,'], EntityTagList((EntityTag(b"a", weak=True), EntityTag(b"b")))),
        ([b'"a"', b'W/"b"'], EntityTagList((EntityTag(b"a"), EntityTag(b"b", weak=True)))),
        ([b'"a,b", "c"'], EntityTagList((EntityTag(b"a,b"), EntityTag(b"c")))),
        ([b" * "], EntityTagList(wildcard=True)),
        ([b'*, "a"'], EntityTagList((EntityTag(b"a"),))),  # "*" only stands alone
        ([b'garbage, "a"x, "b"'], EntityTagList((EntityTag(b"b"),))),
        ([b"garbage"], EntityTagList(())),
    ],
)
def test_entity_tag_list_keeps_valid_members(lines: list[bytes], expected: EntityTagList) -> None:
    assert parse_entity_tag_list(lines) == expected


@pytest.mark.parametrize("lines", [[], [b""], [b"  ", b", ,"]])
def test_empty_entity_tag_list_is_treated_as_absent(lines: list[bytes]) -> None:
    assert parse_entity_tag_list(lines) is None


@given(st.one_of(st.binary(), st.text()))
def test_entity_tag_parsers_never_raise(value: bytes | str) -> None:
    parse_entity_tag(value)
    parse_entity_tag_list([value, value])


@given(st.one_of(st.binary(), st.text()))
def test_entity_tag_list_format_then_parse_is_stable(value: bytes | str) -> None:
    parsed = parse_entity_tag_list([value])
    if parsed is not None:
        again = parse_entity_tag_list([format_entity_tag_list(parsed)])
        assert again == parsed or (again is None and parsed == EntityTagList(()))


# Field values built from the pieces that decide the shape: quotes, W/, commas, spaces.
tag_shaped = st.lists(
    st.sampled_from([b'"', b"W/", b",", b" ", b"\t", b"*", b"a", b"\x7f", b"\x80", b"\\"]),
    max_size=10,
).map(b"".join)


@given(tag_shaped)
def test_single_entity_tag_shortcut_agrees_with_the_list_scanner(value: bytes) -> None:
    # parse_entity_tag takes `"x"` and `W/"x"` without scanning; both routes must agree.
    members = list(_scan_members(value))
    scanned = members[0] if len(members) == 1 and isinstance(members[0], EntityTag) else None
    assert parse_entity_tag(value) == scanned
    # A trailing space is optional whitespace to the scanner and keeps the shortcut out.
    assert parse_entity_tag_list([value]) == parse_entity_tag_list([value + b" "])


@given(st.lists(entity_tags, min_size=1, max_size=6))
def test_formatted_entity_tag_list_parses_back_exactly(tags: list[EntityTag]) -> None:
    formatted = format_entity_tag_list(EntityTagList(tuple(tags)))
    assert parse_entity_tag_list([formatted]) == EntityTagList(tuple(tags))


def test_entity_tag_rejects_characters_outside_etagc() -> None:
    with pytest.raises(ValueError, match="opaque"):
        EntityTag(b'has"quote')


# --- comparison (§8.8.3.2, the RFC's own table) ----------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "strong", "weak"),
    [
        (EntityTag(b"1", weak=True), EntityTag(b"1", weak=True), False, True),
        (EntityTag(b"1", weak=True), EntityTag(b"2", weak=True), False, False),
        (EntityTag(b"1", weak=True), EntityTag(b"1"), False, True),
        (EntityTag(b"1"), EntityTag(b"1"), True, True),
    ],
)
def test_strong_and_weak_comparison_follow_rfc_table(
    a: EntityTag, b: EntityTag, strong: bool, weak: bool
) -> None:
    assert (strong_match(a, b), weak_match(a, b)) == (strong, weak)


# --- precondition evaluation (§13.1, §13.2.2) ------------------------------------------


def evaluate(
    headers: list[tuple[bytes, bytes]],
    method: str = "GET",
    etag: EntityTag | None = CURRENT,
    last_modified: float | None = LAST_MODIFIED,
    exists: bool = True,
) -> PreconditionOutcome:
    conditions = RequestConditions.from_headers(headers)
    if conditions is None:
        return PROCEED
    return evaluate_preconditions(
        conditions,
        method=method,
        etag=etag,
        last_modified=last_modified,
        exists=exists,
        now=NOW,
    )


conditional_names = st.sampled_from(
    [b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"accept"]
)


@given(
    st.lists(st.tuples(conditional_names, st.binary(max_size=40)), max_size=6),
    st.sampled_from(["GET", "HEAD", "PUT", "POST"]),
    st.one_of(st.none(), entity_tags),
    st.one_of(st.none(), st.floats(min_value=-1e12, max_value=1e12)),
)
def test_precondition_evaluation_is_total_on_any_request_headers(
    headers: list[tuple[bytes, bytes]],
    method: str,
    etag: EntityTag | None,
    last_modified: float | None,
) -> None:
    conditions = RequestConditions.from_headers(headers)
    if conditions is not None:
        outcome = evaluate_preconditions(
            conditions, method=method, etag=etag, last_modified=last_modified, now=NOW
        )
        assert outcome is not NOT_MODIFIED or method in ("GET", "HEAD")


def test_request_without_preconditions_has_no_conditions() -> None:
    assert RequestConditions.from_headers([(b"accept", b"*/*"), (b"if-range", b'"x"')]) is None


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "POST", "PATCH"])
@pytest.mark.parametrize(
    ("if_match", "expected"),
    [
        (b'"v2"', PROCEED),
        (b'"v1", "v2"', PROCEED),
        (b'"v1"', FAILED),
        (b'W/"v2"', FAILED),  # If-Match uses the strong comparison
        (b"*", PROCEED),
        (b"not-an-etag", FAILED),  # garbage matches nothing: fail safe
    ],
)
def test_if_match_uses_strong_comparison_and_fails_with_412_on_any_method(
    method: str, if_match: bytes, expected: PreconditionOutcome
) -> None:
    assert evaluate([(b"if-match", if_match)], method=method) == expected


def test_if_match_fails_against_a_weak_current_etag() -> None:
    assert evaluate([(b"if-match", b'W/"v2"')], etag=WEAK_CURRENT) == FAILED


def test_if_match_star_fails_when_no_representation_exists() -> None:
    outcome = evaluate([(b"if-match", b"*")], method="PUT", etag=None, exists=False)
    assert outcome == FAILED


def test_if_match_list_fails_when_the_resource_has_no_etag() -> None:
    assert evaluate([(b"if-match", b'"v2"')], method="PUT", etag=None) == FAILED


@pytest.mark.parametrize(
    ("since", "expected"),
    [(LAST_MODIFIED_DATE, PROCEED), (LATER_DATE, PROCEED), (EARLIER_DATE, FAILED)],
)
def test_if_unmodified_since_fails_when_modified_after_the_date(
    since: bytes, expected: PreconditionOutcome
) -> None:
    assert evaluate([(b"if-unmodified-since", since)], method="PUT") == expected


def test_if_unmodified_since_is_ignored_when_if_match_is_present() -> None:
    headers = [(b"if-match", b'"v2"'), (b"if-unmodified-since", EARLIER_DATE)]
    assert evaluate(headers, method="PUT") == PROCEED


def test_if_unmodified_since_is_ignored_without_a_last_modified_date() -> None:
    headers = [(b"if-unmodified-since", EARLIER_DATE)]
    assert evaluate(headers, method="PUT", last_modified=None) == PROCEED


@pytest.mark.parametrize(
    ("if_none_match", "current", "expected"),
    [
        (b'"v2"', CURRENT, NOT_MODIFIED),
        (b'W/"v2"', CURRENT, NOT_MODIFIED),
        (b'"v2"', WEAK_CURRENT, NOT_MODIFIED),
        (b'W/"v2"', WEAK_CURRENT, NOT_MODIFIED),
        (b'"v0", "v1", W/"v2"', CURRENT, NOT_MODIFIED),
        (b'"v1"', CURRENT, PROCEED),
        (b'"v2"', None, PROCEED),
        (b"*", CURRENT, NOT_MODIFIED),
    ],
)
def test_if_none_match_weak_comparison_matches_weak_etag(
    if_none_match: bytes, current: EntityTag | None, expected: PreconditionOutcome
) -> None:
    assert evaluate([(b"if-none-match", if_none_match)], etag=current) == expected


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_if_none_match_failure_on_get_or_head_is_not_modified(method: str) -> None:
    assert evaluate([(b"if-none-match", b'"v2"')], method=method) == NOT_MODIFIED


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "PATCH"])
def test_if_none_match_failure_on_unsafe_method_is_412(method: str) -> None:
    assert evaluate([(b"if-none-match", b'"v2"')], method=method) == FAILED


def test_if_none_match_star_lets_put_create_a_missing_resource() -> None:
    headers = [(b"if-none-match", b"*")]
    assert evaluate(headers, method="PUT", etag=None, last_modified=None, exists=False) == PROCEED
    assert evaluate(headers, method="PUT") == FAILED


@pytest.mark.parametrize(
    ("since", "expected"),
    [(LAST_MODIFIED_DATE, NOT_MODIFIED), (LATER_DATE, NOT_MODIFIED), (EARLIER_DATE, PROCEED)],
)
def test_if_modified_since_is_not_modified_unless_modified_after_the_date(
    since: bytes, expected: PreconditionOutcome
) -> None:
    assert evaluate([(b"if-modified-since", since)]) == expected


def test_if_modified_since_is_ignored_when_if_none_match_is_present() -> None:
    headers = [(b"if-none-match", b'"v1"'), (b"if-modified-since", LATER_DATE)]
    assert evaluate(headers) == PROCEED


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "OPTIONS"])
def test_if_modified_since_is_only_for_get_and_head(method: str) -> None:
    assert evaluate([(b"if-modified-since", LATER_DATE)], method=method) == PROCEED


@pytest.mark.parametrize(
    "header", [b"if-modified-since", b"if-unmodified-since"], ids=["IMS", "IUS"]
)
@pytest.mark.parametrize(
    "value",
    [b"yesterday", b"", b"Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT"],
)
def test_unparsable_dates_are_ignored(header: bytes, value: bytes) -> None:
    assert evaluate([(header, value)]) == PROCEED


def test_if_modified_since_with_several_field_lines_is_ignored() -> None:
    headers = [(b"if-modified-since", LATER_DATE), (b"if-modified-since", LATER_DATE)]
    assert evaluate(headers) == PROCEED


def test_if_modified_since_in_the_future_is_ignored() -> None:
    headers = [(b"if-modified-since", b"Sun, 06 Nov 2150 08:49:37 GMT")]
    assert evaluate(headers) == PROCEED


def test_sub_second_last_modified_compares_at_one_second_resolution() -> None:
    outcome = evaluate(
        [(b"if-modified-since", LAST_MODIFIED_DATE)], last_modified=LAST_MODIFIED + 0.9
    )
    assert outcome == NOT_MODIFIED


def test_precondition_order_puts_if_match_before_if_none_match() -> None:
    # Both fail: If-Match is evaluated first, so a GET gets 412, not 304.
    headers = [(b"if-none-match", b'"v2"'), (b"if-match", b'"v1"')]
    assert evaluate(headers) == FAILED


def test_precondition_order_puts_if_unmodified_since_before_if_modified_since() -> None:
    headers = [(b"if-modified-since", LATER_DATE), (b"if-unmodified-since", EARLIER_DATE)]
    assert evaluate(headers) == FAILED


def test_response_validators_reads_etag_and_last_modified() -> None:
    headers = [(b"etag", b'W/"x"'), (b"last-modified", LAST_MODIFIED_DATE)]
    assert response_validators(headers) == (EntityTag(b"x", weak=True), LAST_MODIFIED)


# --- body digest -----------------------------------------------------------------------


def test_body_etag_is_a_pinned_strong_digest() -> None:
    # Pinned: a changed digest would invalidate every client's and cache's stored ETag.
    assert entity_tag_value_for_body(b"hello") == b'"2cf24dba5fb0a30e26e83b2ac5b9e29e"'
    assert entity_tag_for_body(b"hello") == EntityTag(b"2cf24dba5fb0a30e26e83b2ac5b9e29e")


def test_body_etag_is_identical_across_processes() -> None:
    script = (
        "import sys; from cachemw.http.validators import entity_tag_value_for_body as f; "
        "sys.stdout.write(f(b'{\"id\": 1}' * 100).decode())"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, check=True, env=env, text=True
        )
        outputs.add(result.stdout)
    assert outputs == {entity_tag_value_for_body(b'{"id": 1}' * 100).decode()}
