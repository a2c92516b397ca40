"""A small strict parser for RFC 9651 Structured Field Lists, to check our header syntax.

Written for the tests (no dependency): it rejects anything the RFC's parsing algorithm
(§4.2) fails on, and returns members as ``(bare_item, {param: bare_item})``.
"""

from __future__ import annotations

import string

BareItem = int | float | str | bool | bytes
Member = tuple[BareItem, dict[str, BareItem]]

_TCHAR = set("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_KEY_FIRST = set(string.ascii_lowercase + "*")
_KEY_CHAR = _KEY_FIRST | set(string.digits + "_-.")


class Token(str):
    """A parsed sf-token, distinguishable from an sf-string."""


class StructuredFieldError(ValueError):
    pass


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, what: str) -> StructuredFieldError:
        return StructuredFieldError(f"{what} at {self.pos} in {self.text!r}")

    def bare_item(self) -> BareItem:
        ch = self.peek()
        if ch == "-" or ch.isdigit():
            return self.number()
        if ch == '"':
            return self.string()
        if ch in string.ascii_letters or ch == "*":
            return self.token()
        if ch == "?":
            self.pos += 1
            value = self.peek()
            if value not in ("0", "1"):
                raise self.fail("bad boolean")
            self.pos += 1
            return value == "1"
        raise self.fail("no bare item")

    def number(self) -> int | float:
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        digits = ""
        while self.peek().isdigit() or (self.peek() == "." and "." not in digits):
            digits += self.peek()
            self.pos += 1
        if not digits or not digits[0].isdigit():
            raise self.fail("bad number")
        if "." in digits:
            whole, frac = digits.split(".")
            if len(whole) > 12 or not 1 <= len(frac) <= 3:
                raise self.fail("bad decimal")
            return float(self.text[start : self.pos])
        if len(digits) > 15:
            raise self.fail("integer too long")
        return int(self.text[start : self.pos])

    def string(self) -> str:
        self.pos += 1
        out = []
        while True:
            ch = self.peek()
            if not ch:
                raise self.fail("unterminated string")
            self.pos += 1
            if ch == "\\":
                nxt = self.peek()
                if nxt not in ('"', "\\"):
                    raise self.fail("bad escape")
                out.append(nxt)
                self.pos += 1
            elif ch == '"':
                return "".join(out)
            elif not 0x20 <= ord(ch) <= 0x7E:
                raise self.fail("bad string character")
            else:
                out.append(ch)

    def token(self) -> Token:
        start = self.pos
        self.pos += 1
        while self.peek() and (self.peek() in _TCHAR or self.peek() in ":/"):
            self.pos += 1
        return Token(self.text[start : self.pos])

    def parameters(self) -> dict[str, BareItem]:
        params: dict[str, BareItem] = {}
        while self.peek() == ";":
            self.pos += 1
            while self.peek() == " ":
                self.pos += 1
            if self.peek() not in _KEY_FIRST or not self.peek():
                raise self.fail("bad parameter key")
            start = self.pos
            while self.peek() and self.peek() in _KEY_CHAR:
                self.pos += 1
            key = self.text[start : self.pos]
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params[key] = value
        return params

    def list(self) -> list[Member]:
        members: list[Member] = []
        while self.peek() == " ":
            self.pos += 1
        while self.pos < len(self.text):
            members.append((self.bare_item(), self.parameters()))
            while self.peek() in (" ", "\t") and self.peek():
                self.pos += 1
            if self.pos >= len(self.text):
                return members
            if self.peek() != ",":
                raise self.fail("expected ','")
            self.pos += 1
            while self.peek() in (" ", "\t") and self.peek():
                self.pos += 1
            if self.pos >= len(self.text):
                raise self.fail("trailing comma")
        return members


def parse_list(text: str | bytes) -> list[Member]:
    if isinstance(text, bytes):
        text = text.decode("ascii")
    return _Parser(text).list()


def _check_integer(params: dict[str, BareItem], name: str, minimum: int, *, required: bool) -> None:
    if name not in params:
        assert not required, f"missing required parameter {name!r}: {params}"
        return
    value = params[name]
    assert isinstance(value, int), params
    assert not isinstance(value, bool), params
    assert value >= minimum, params


def _check_string_item(item: BareItem) -> str:
    assert isinstance(item, str), item
    assert not isinstance(item, Token), f"policy name {item!r} must be an sf-string"
    return item


def check_ratelimit_policy(value: str | bytes) -> dict[str, dict[str, BareItem]]:
    """draft-ietf-httpapi-ratelimit-headers-10 §3: a non-empty List of String items with q
    (Integer, required), w (Integer), qu (String), pk (Byte Sequence); names unique."""
    members = parse_list(value)
    assert members, "RateLimit-Policy must be a non-empty list"
    policies: dict[str, dict[str, BareItem]] = {}
    for item, params in members:
        name = _check_string_item(item)
        assert name not in policies, f"duplicate policy {name!r}"
        _check_integer(params, "q", 0, required=True)
        _check_integer(params, "w", 1, required=False)
        if "qu" in params:
            assert isinstance(params["qu"], str), params
        policies[name] = params
    return policies


def check_ratelimit(value: str | bytes) -> dict[str, dict[str, BareItem]]:
    """draft-10 §4: a non-empty List of String items with r (Integer >= 0, required) and
    t (Integer >= 0)."""
    members = parse_list(value)
    assert members, "RateLimit must be a non-empty list"
    limits: dict[str, dict[str, BareItem]] = {}
    for item, params in members:
        name = _check_string_item(item)
        _check_integer(params, "r", 0, required=True)
        _check_integer(params, "t", 0, required=False)
        limits[name] = params
    return limits
