"""Targeted cache-control fields such as CDN-Cache-Control (RFC 9213).

A targeted field is a Structured Field Dictionary (RFC 8941 §3.2) carrying Cache-Control
directives for one class of cache. When a cache honours one and it is present, valid and
non-empty, the cache uses it *instead of* Cache-Control and Expires (RFC 9213 §2.1);
otherwise it behaves as if the field were absent. So the caller does::

    targeted = parse_targeted_cache_control(cdn_cache_control_lines)
    if targeted is not None:
        response_cc, expires = targeted, None

The Structured Field parser is strict (any syntax error makes the whole field invalid), as
RFC 8941 §4.2 requires. Directive values of the wrong type: ``max-age``/``s-maxage`` become 0
(stale, as for Cache-Control), other numeric directives are ignored, a non-boolean
``no-cache``/``private`` is taken as the qualified form when it holds field names and as the
unqualified form otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from cachemw.http.cache_control import (
    MAX_DELTA_SECONDS,
    CacheControl,
    is_token,
    parse_cache_control,
)

__all__ = ["parse_targeted_cache_control"]

_LCALPHA = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
_KEY_FIRST = _LCALPHA + "*"
_KEY_REST = _LCALPHA + _DIGITS + "_-.*"
_TOKEN_REST = _LCALPHA + _LCALPHA.upper() + _DIGITS + "!#$%&'*+-.^_`|~:/"
_BASE64 = _LCALPHA + _LCALPHA.upper() + _DIGITS + "+/="
_INTEGER_DIRECTIVES = frozenset(
    ("max-age", "s-maxage", "max-stale", "min-fresh", "stale-while-revalidate", "stale-if-error")
)


class _Invalid(Exception):
    """The field is not a valid Structured Field Dictionary."""


class _Token(str):
    __slots__ = ()


class _Parser:
    """RFC 8941 §4.2 Dictionary parser; values are bool, int, float, str, _Token, bytes-like
    str (byte sequences kept as their base64 text) or a list of items for inner lists."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def dictionary(self) -> dict[str, object]:
        members: dict[str, object] = {}
        self.skip(" ")
        while self.pos < len(self.text):
            key = self.key()
            if self.peek() == "=":
                self.pos += 1
                members[key] = self.inner_list() if self.peek() == "(" else self.item()
            else:
                self.parameters()
                members[key] = True
            self.skip(" \t")
            if self.pos == len(self.text):
                return members
            if self.peek() != ",":
                raise _Invalid
            self.pos += 1
            self.skip(" \t")
            if self.pos == len(self.text):
                raise _Invalid  # trailing comma
        return members

    def key(self) -> str:
        start = self.pos
        if self.peek() == "" or self.peek() not in _KEY_FIRST:
            raise _Invalid
        self.pos += 1
        self.skip(_KEY_REST)
        return self.text[start : self.pos]

    def item(self) -> object:
        value = self.bare_item()
        self.parameters()
        return value

    def inner_list(self) -> list[object]:
        self.pos += 1  # "("
        items: list[object] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                self.parameters()
                return items
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise _Invalid

    def parameters(self) -> None:
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            self.key()
            if self.peek() == "=":
                self.pos += 1
                self.bare_item()

    def bare_item(self) -> object:
        char = self.peek()
        if char == "-" or (char and char in _DIGITS):
            return self.number()
        if char == '"':
            return self.string()
        if char == "?":
            flag = self.text[self.pos + 1 : self.pos + 2]
            if flag not in ("0", "1"):
                raise _Invalid
            self.pos += 2
            return flag == "1"
        if char == ":":
            end = self.text.find(":", self.pos + 1)
            if end == -1 or self.text[self.pos + 1 : end].strip(_BASE64):
                raise _Invalid
            value = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return value
        if char and ((char.isascii() and char.isalpha()) or char == "*"):
            start = self.pos
            self.pos += 1
            self.skip(_TOKEN_REST)
            return _Token(self.text[start : self.pos])
        raise _Invalid

    def number(self) -> int | float:
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        digits_start = self.pos
        self.skip(_DIGITS)
        integer = self.text[digits_start : self.pos]
        if not integer:
            raise _Invalid
        if self.peek() != ".":
            if len(integer) > 15:
                raise _Invalid
            return int(self.text[start : self.pos])
        self.pos += 1
        fraction_start = self.pos
        self.skip(_DIGITS)
        fraction = self.text[fraction_start : self.pos]
        if len(integer) > 12 or not 1 <= len(fraction) <= 3:
            raise _Invalid
        return float(self.text[start : self.pos])

    def string(self) -> str:
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                escaped = self.peek()
                if escaped not in ('"', "\\") or not escaped:
                    raise _Invalid
                chars.append(escaped)
                self.pos += 1
            elif char == '"':
                return "".join(chars)
            elif not " " <= char <= "~":
                raise _Invalid
            else:
                chars.append(char)
        raise _Invalid  # unterminated


def _field_names(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in items:
        if isinstance(item, str):
            for part in item.split(","):
                name = part.strip(" \t").lower()
                if is_token(name) and name not in names:
                    names.append(name)
    return tuple(names)


def _directives(members: dict[str, object]) -> CacheControl:
    text: list[str] = []
    qualified: dict[str, tuple[str, ...]] = {}
    for key, value in members.items():
        if key in _INTEGER_DIRECTIVES:
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                text.append(f"{key}={min(value, MAX_DELTA_SECONDS)}")
            elif key in ("max-age", "s-maxage"):
                text.append(f"{key}=0")  # invalid freshness means stale (RFC 9111 §4.2.1)
        elif value is True:
            text.append(key)
        elif value is False:
            continue
        elif key in ("no-cache", "private") and _field_names(value):
            qualified[key] = _field_names(value)
        elif key in ("no-cache", "private"):
            text.append(key)
        else:
            text.append(key)  # an extension: its presence is what matters here
    cc = parse_cache_control([", ".join(text)])
    if qualified:
        cc = replace(
            cc,
            no_cache_fields=qualified.get("no-cache", ()),
            private_fields=qualified.get("private", ()),
        )
    return cc


def parse_targeted_cache_control(values: Iterable[bytes | str]) -> CacheControl | None:
    """Directives of a targeted field (all its lines), or ``None`` to fall back to
    Cache-Control and Expires (field absent, empty or not a valid Dictionary)."""
    lines = [v.decode("latin-1") if isinstance(v, bytes) else v for v in values]
    text = ", ".join(line for line in lines if line.strip(" \t")).strip(" ")
    if not text or not text.isascii():
        return None
    try:
        members = _Parser(text).dictionary()
    except _Invalid:
        return None
    if not members:
        return None
    return _directives(members)
