"""Validators and conditional requests (RFC 9110 §8.8, §13), sans-I/O.

Entity-tags are kept as bytes without their DQUOTEs; every parser here is total (never
raises) because its input is whatever a client sent. Dates go through
`cachemw.http.dates.parse_http_date`, so an unparsable date is simply absent.
"""

from __future__ import annotations

import enum
import hashlib
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from cachemw.http.dates import parse_http_date

__all__ = [
    "EntityTag",
    "EntityTagList",
    "PreconditionOutcome",
    "RequestConditions",
    "entity_tag_for_body",
    "entity_tag_value_for_body",
    "evaluate_preconditions",
    "format_entity_tag_list",
    "has_conditional_fields",
    "if_match_passes",
    "if_modified_since_passes",
    "if_none_match_passes",
    "if_unmodified_since_passes",
    "parse_entity_tag",
    "parse_entity_tag_list",
    "response_validators",
    "strong_match",
    "weak_match",
]

# RFC 9110 §8.8.3: etagc = %x21 / %x23-7E / obs-text (%x80-FF); no DQUOTE, no CTLs, no space.
_ETAGC = bytes([0x21, *range(0x23, 0x7F), *range(0x80, 0x100)])
_OWS = b" \t"
_DQUOTE = 0x22
_COMMA = 0x2C
_WEAK_PREFIX = b"W/"
_SAFE_METHODS_WITH_REPRESENTATION = frozenset({"GET", "HEAD"})
_CONDITIONAL_FIELDS = frozenset(
    {b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since"}
)
_field_name = operator.itemgetter(0)
# Copied for every body: with OpenSSL 3, hashlib.sha256() looks the algorithm up again on
# each call, which costs more than hashing a 1 KB body once the caches are cold (in a busy
# server, always). Never updated itself, so sharing it between threads is safe.
_EMPTY_SHA256 = hashlib.sha256()


def _as_bytes(value: bytes | str) -> bytes:
    # ASGI gives bytes; str is accepted for callers' convenience. surrogatepass keeps this
    # total on any Python str (obs-text bytes >= 0x80 are legal in an opaque-tag).
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def _is_opaque_tag(opaque: bytes) -> bool:
    return not opaque.translate(None, _ETAGC)


@dataclass(frozen=True, slots=True)
class EntityTag:
    """An entity-tag (RFC 9110 §8.8.3). `opaque` excludes the surrounding DQUOTEs."""

    opaque: bytes
    weak: bool = False

    def __post_init__(self) -> None:
        if not _is_opaque_tag(self.opaque):
            raise ValueError(
                f"EntityTag opaque={self.opaque!r} is invalid: allowed are bytes 0x21, "
                "0x23-0x7E and 0x80-0xFF (RFC 9110 §8.8.3 etagc; no DQUOTE, space or controls)"
            )

    def to_bytes(self) -> bytes:
        """The field value, e.g. ``W/"abc"``."""
        quoted = b'"' + self.opaque + b'"'
        return _WEAK_PREFIX + quoted if self.weak else quoted

    def as_weak(self) -> EntityTag:
        return self if self.weak else EntityTag(self.opaque, weak=True)


@dataclass(frozen=True, slots=True)
class EntityTagList:
    """An If-Match / If-None-Match field value: ``*`` or a list of entity-tags (§13.1.1)."""

    tags: tuple[EntityTag, ...] = ()
    wildcard: bool = False


def strong_match(a: EntityTag, b: EntityTag) -> bool:
    """RFC 9110 §8.8.3.2 strong comparison: both strong and opaque-tags identical."""
    return not a.weak and not b.weak and a.opaque == b.opaque


def weak_match(a: EntityTag, b: EntityTag) -> bool:
    """RFC 9110 §8.8.3.2 weak comparison: opaque-tags identical, weakness ignored."""
    return a.opaque == b.opaque


def _skip(data: bytes, i: int, chars: bytes) -> int:
    n = len(data)
    while i < n and data[i] in chars:
        i += 1
    return i


def _scan_members(data: bytes) -> Iterator[EntityTag | bytes | None]:
    """Yield each list member: an EntityTag, b"*", or None for an invalid member.

    A scanner rather than split(b","): a comma is a legal etagc inside a quoted tag.
    """
    n = len(data)
    i = 0
    while True:
        i = _skip(data, i, b" \t,")
        if i >= n:
            return
        start = i
        weak = data.startswith(_WEAK_PREFIX, i)
        if weak:
            i += 2
        member: EntityTag | bytes | None = None
        if i < n and data[i] == _DQUOTE:
            end = data.find(b'"', i + 1)
            if end == -1:
                yield None
                return
            opaque = data[i + 1 : end]
            if _is_opaque_tag(opaque):
                member = EntityTag(opaque, weak=weak)
            i = end + 1
        elif not weak and data[i] == 0x2A:  # "*"
            member = b"*"
            i += 1
        i = _skip(data, i, _OWS)
        if i < n and data[i] != _COMMA:
            # Trailing garbage makes the whole member invalid, e.g. `"a"x` or `*x`.
            member = None
            comma = data.find(b",", i)
            i = n if comma == -1 else comma
        if i == start:  # defensive: always make progress
            i += 1
        yield member


def _exact_entity_tag(data: bytes) -> EntityTag | None:
    """The entity-tag when `data` is one, exactly: the shape nearly every field has.

    None says only "not this shape": the scanner decides the rest (whitespace, lists,
    invalid members). An opaque-tag never holds a DQUOTE, so `"a", "b"` is not taken here.
    """
    weak = data.startswith(_WEAK_PREFIX)
    opaque = data[3:-1] if weak else data[1:-1]
    if (
        len(data) >= (4 if weak else 2)
        and data[2 if weak else 0] == _DQUOTE
        and data[-1] == _DQUOTE
        and _is_opaque_tag(opaque)
    ):
        return EntityTag(opaque, weak=weak)
    return None


def parse_entity_tag(value: bytes | str) -> EntityTag | None:
    """Parse a single ETag field value (§8.8.3); None if it is not exactly one entity-tag."""
    data = _as_bytes(value)
    exact = _exact_entity_tag(data)
    if exact is not None:
        return exact
    members = list(_scan_members(data))
    if len(members) == 1 and isinstance(members[0], EntityTag):
        return members[0]
    return None


def parse_entity_tag_list(values: Iterable[bytes | str]) -> EntityTagList | None:
    """Parse all field lines of If-Match or If-None-Match (§13.1.1, §13.1.2).

    None when the field is absent or every line is empty (RFC 9110 §5.6.1: empty list
    elements are ignored). Invalid members are dropped, so a garbage If-Match matches
    nothing (fails safe, 412) and a garbage If-None-Match matches nothing (full 200).
    ``*`` counts only when it is the entire field value, as the grammar
    ``"*" / #entity-tag`` allows.
    """
    members: list[EntityTag | bytes | None] = []
    for value in values:
        data = _as_bytes(value)
        exact = _exact_entity_tag(data)
        if exact is not None:
            members.append(exact)
        else:
            members.extend(_scan_members(data))
    if not members:
        return None
    if len(members) == 1 and members[0] == b"*":
        return EntityTagList(wildcard=True)
    return EntityTagList(tags=tuple(m for m in members if isinstance(m, EntityTag)))


def format_entity_tag_list(tags: EntityTagList) -> bytes:
    if tags.wildcard:
        return b"*"
    return b", ".join(tag.to_bytes() for tag in tags.tags)


def has_conditional_fields(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether a raw ASGI header list has any If-* precondition field (decided in C)."""
    return not _CONDITIONAL_FIELDS.isdisjoint(map(_field_name, headers))


def entity_tag_value_for_body(body: bytes | bytearray | memoryview) -> bytes:
    """A strong ETag field value (``"<32 hex>"``) from a digest of the exact body bytes.

    SHA-256 is keyless and deterministic, so the value is the same in every process and
    after a restart (unlike hash()); it runs in hardware (SHA-NI, ARMv8 crypto) on current
    CPUs, faster there than blake2b. Truncated to 128 bits: an accidental collision stays
    irrelevant and the header stays short.
    """
    digest = _EMPTY_SHA256.copy()
    digest.update(body)
    return b'"%s"' % digest.hexdigest()[:32].encode("ascii")


def entity_tag_for_body(body: bytes | bytearray | memoryview) -> EntityTag:
    """`entity_tag_value_for_body` as an EntityTag."""
    return EntityTag(entity_tag_value_for_body(body)[1:-1])


def response_validators(
    headers: Iterable[tuple[bytes, bytes]],
) -> tuple[EntityTag | None, float | None]:
    """The (ETag, Last-Modified) of a response's raw ASGI header list; invalid ones → None."""
    etag: EntityTag | None = None
    last_modified: float | None = None
    for name, value in headers:
        if name == b"etag":
            etag = parse_entity_tag(value)
        elif name == b"last-modified":
            last_modified = parse_http_date(value)
    return etag, last_modified


class PreconditionOutcome(enum.Enum):
    """What RFC 9110 §13.2.2 says to do with a request."""

    PROCEED = "proceed"
    NOT_MODIFIED = "not_modified"  # 304, only ever for GET/HEAD
    PRECONDITION_FAILED = "precondition_failed"  # 412


def _single_date(values: list[bytes]) -> float | None:
    # §13.1.3/§13.1.4: ignore the field if it has more than one member or is not a valid
    # HTTP-date. Several field lines are several members.
    return parse_http_date(values[0]) if len(values) == 1 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestConditions:
    """The preconditions a request carries (RFC 9110 §13.1), already parsed."""

    if_match: EntityTagList | None = None
    if_none_match: EntityTagList | None = None
    if_modified_since: float | None = None
    if_unmodified_since: float | None = None

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[bytes, bytes]]) -> RequestConditions | None:
        """Parse a raw ASGI request header list (lower-case names); None if it has none."""
        if isinstance(headers, list | tuple) and not has_conditional_fields(headers):
            return None  # the common case, decided in C on every request
        if_match: list[bytes] = []
        if_none_match: list[bytes] = []
        if_modified_since: list[bytes] = []
        if_unmodified_since: list[bytes] = []
        found = False
        for name, value in headers:
            if name == b"if-none-match":
                if_none_match.append(value)
            elif name == b"if-modified-since":
                if_modified_since.append(value)
            elif name == b"if-match":
                if_match.append(value)
            elif name == b"if-unmodified-since":
                if_unmodified_since.append(value)
            else:
                continue
            found = True
        if not found:
            return None
        conditions = cls(
            if_match=parse_entity_tag_list(if_match) if if_match else None,
            if_none_match=parse_entity_tag_list(if_none_match) if if_none_match else None,
            if_modified_since=_single_date(if_modified_since) if if_modified_since else None,
            if_unmodified_since=(
                _single_date(if_unmodified_since) if if_unmodified_since else None
            ),
        )
        return None if conditions == _NO_CONDITIONS else conditions


_NO_CONDITIONS = RequestConditions()


def if_match_passes(field: EntityTagList, current: EntityTag | None, *, exists: bool) -> bool:
    """§13.1.1: ``*`` needs a current representation; a list needs a strong match."""
    if field.wildcard:
        return exists
    return current is not None and any(strong_match(tag, current) for tag in field.tags)


def if_none_match_passes(field: EntityTagList, current: EntityTag | None, *, exists: bool) -> bool:
    """§13.1.2: ``*`` fails when a representation exists; a list fails on a weak match."""
    if field.wildcard:
        return not exists
    return current is None or not any(weak_match(tag, current) for tag in field.tags)


def _whole_seconds(epoch_seconds: float) -> int:
    # HTTP-date has one-second resolution (§5.6.7); a sub-second Last-Modified must not
    # look newer than the date the client received for it.
    return int(epoch_seconds // 1)


def if_unmodified_since_passes(since: float, last_modified: float | None) -> bool:
    """§13.1.4: true when the representation is not newer than the date.

    Without a modification date the field is ignored (the RFC's MAY), so it passes.
    """
    return last_modified is None or _whole_seconds(last_modified) <= since


def if_modified_since_passes(since: float, last_modified: float | None) -> bool:
    """§13.1.3: false (→ 304) when the representation is not newer than the date."""
    return last_modified is None or _whole_seconds(last_modified) > since


def evaluate_preconditions(
    conditions: RequestConditions,
    *,
    method: str,
    etag: EntityTag | None,
    last_modified: float | None,
    exists: bool = True,
    now: float | None = None,
) -> PreconditionOutcome:
    """RFC 9110 §13.2.2: evaluate preconditions in the order the RFC fixes.

    Call it only when the response without the conditions would be 2xx or 412 (§13.2.1).
    `etag`/`last_modified` describe the selected representation; `exists` says whether
    there is one at all (for ``*``). `now`, when given, makes an If-Modified-Since in the
    future be ignored, since it cannot come from a date this server sent.
    """
    is_get_or_head = method in _SAFE_METHODS_WITH_REPRESENTATION
    # Step 1 / step 2: If-Match, else If-Unmodified-Since (§13.1.4: ignored with If-Match).
    if conditions.if_match is not None:
        if not if_match_passes(conditions.if_match, etag, exists=exists):
            return PreconditionOutcome.PRECONDITION_FAILED
    elif conditions.if_unmodified_since is not None and not if_unmodified_since_passes(
        conditions.if_unmodified_since, last_modified
    ):
        return PreconditionOutcome.PRECONDITION_FAILED
    # Step 3 / step 4: If-None-Match, else If-Modified-Since for GET/HEAD only (§13.1.3).
    if conditions.if_none_match is not None:
        if not if_none_match_passes(conditions.if_none_match, etag, exists=exists):
            return (
                PreconditionOutcome.NOT_MODIFIED
                if is_get_or_head
                else PreconditionOutcome.PRECONDITION_FAILED
            )
    elif (
        is_get_or_head
        and conditions.if_modified_since is not None
        and (now is None or conditions.if_modified_since <= now)
        and not if_modified_since_passes(conditions.if_modified_since, last_modified)
    ):
        return PreconditionOutcome.NOT_MODIFIED
    return PreconditionOutcome.PROCEED
