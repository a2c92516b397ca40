"""Vary parsing and merging (RFC 9110 §12.5.5; RFC 9111 §4.1).

Both functions are total. ``parse_vary`` is what a cache keys on, so anything it cannot
understand makes it answer ``None`` ("Vary: *", never matches) rather than silently keying on
less than the origin asked for. ``merge_vary`` is what an app emits, so it keeps the first
spelling of each name and only drops (case-insensitive) duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable

from cachemw.http.cache_control import is_token

__all__ = ["merge_vary", "parse_vary"]

_OWS = " \t"


def _elements(values: Iterable[bytes | str]) -> Iterable[str]:
    for line in values:
        text = line.decode("latin-1") if isinstance(line, bytes) else line
        for part in text.split(","):
            element = part.strip(_OWS)
            if element:
                yield element


def parse_vary(values: Iterable[bytes | str]) -> tuple[str, ...] | None:
    """Lower-cased, de-duplicated field names in first-seen order; ``()`` when none.

    ``None`` means the response varies on something outside the request (``*``, §12.5.5) or
    on an element that is not a field name; such a response can never be selected (§4.1).
    """
    names: list[str] = []
    for element in _elements(values):
        if element == "*" or not is_token(element):
            return None
        name = element.lower()
        if name not in names:
            names.append(name)
    return tuple(names)


def merge_vary(existing: Iterable[bytes | str], extra: Iterable[str]) -> bytes | None:
    """One Vary field value combining the app's lines with ``extra`` names.

    Case-insensitive, no duplicates, the first spelling kept; ``*`` absorbs everything
    (§12.5.5). An element that is not a field name is treated as ``*``, as ``parse_vary``
    does, so a downstream cache never keys on less than was meant. ``None`` when there is
    nothing to emit, so the caller can omit the field.
    """
    seen: set[str] = set()
    names: list[str] = []
    for element in _elements((*existing, *extra)):
        if element == "*" or not is_token(element):
            return b"*"
        key = element.lower()
        if key not in seen:
            seen.add(key)
            names.append(element)
    if not names:
        return None
    return ", ".join(names).encode("ascii")
