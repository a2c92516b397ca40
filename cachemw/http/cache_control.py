"""Cache-Control (RFC 9111 §5.2, RFC 5861, RFC 8246) and Pragma (§5.4) parsing/formatting.

``parse_cache_control`` is total: every input yields a ``CacheControl`` and nothing raises.
Rules for odd input, in one place:

* directive names are case-insensitive (§5.2) and are lower-cased; names that are not HTTP
  tokens are dropped;
* arguments may be a token or a quoted-string for every directive (§5.2: "recipients ought
  to accept both forms"); whitespace around ``=`` or after the closing quote makes the
  argument malformed (the grammar has none), so ``max-age =60`` is an invalid max-age;
* a duplicated directive keeps its first occurrence (§4.2.1);
* an invalid freshness argument (``max-age=abc``, ``s-maxage=-1``, a missing value) is taken
  as 0, i.e. stale (§4.2.1 "consider ... invalid freshness information ... to be stale");
  an invalid ``min-fresh``/``max-stale``/``stale-*`` argument is ignored, which never
  widens what may be served;
* delta-seconds above 2^31 clamp to 2147483648 (§1.2.2);
* ``no-cache``/``private`` with a field list (the qualified form, §5.2.2.4, §5.2.2.7) set
  only ``no_cache_fields``/``private_fields``; an empty or unusable list is taken as the
  unqualified (stricter) form;
* unknown directives are kept in ``extensions`` in order, so they can be re-emitted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cachemw.http.dates import MAX_DELTA_SECONDS

__all__ = [
    "MAX_DELTA_SECONDS",
    "CacheControl",
    "format_cache_control",
    "is_token",
    "parse_cache_control",
    "parse_pragma_no_cache",
]

# RFC 9110 §5.6.2 tchar; ``s.strip(_TCHARS) == ""`` tests "is a token" in C.
_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_OWS = " \t"


def is_token(value: str) -> bool:
    """Whether ``value`` is a non-empty RFC 9110 §5.6.2 token."""
    return bool(value) and not value.strip(_TCHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheControl:
    """Parsed Cache-Control directives of a request or a response.

    Seconds fields are ``None`` when the directive is absent. ``no_cache``/``private`` are
    the unqualified forms; the qualified forms fill ``*_fields`` (lower-case field names).
    """

    max_age: int | None = None
    s_maxage: int | None = None
    max_stale: int | None = None
    min_fresh: int | None = None
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    no_cache: bool = False
    no_cache_fields: tuple[str, ...] = ()
    no_store: bool = False
    no_transform: bool = False
    only_if_cached: bool = False
    must_revalidate: bool = False
    proxy_revalidate: bool = False
    must_understand: bool = False
    public: bool = False
    private: bool = False
    private_fields: tuple[str, ...] = ()
    immutable: bool = False
    extensions: tuple[tuple[str, str | None], ...] = ()


EMPTY_CACHE_CONTROL = CacheControl()

# Directive -> (field, invalid-argument value). Freshness directives fall back to 0 (stale),
# the request-side widening ones to None (ignored).
_SECONDS_DIRECTIVES: dict[str, tuple[str, int | None]] = {
    "max-age": ("max_age", 0),
    "s-maxage": ("s_maxage", 0),
    "min-fresh": ("min_fresh", None),
    "max-stale": ("max_stale", None),
    "stale-while-revalidate": ("stale_while_revalidate", None),
    "stale-if-error": ("stale_if_error", None),
}
_FLAG_DIRECTIVES: dict[str, str] = {
    "no-store": "no_store",
    "no-transform": "no_transform",
    "only-if-cached": "only_if_cached",
    "must-revalidate": "must_revalidate",
    "proxy-revalidate": "proxy_revalidate",
    "must-understand": "must_understand",
    "public": "public",
    "immutable": "immutable",
}


def _to_text(value: bytes | str) -> str:
    # latin-1 maps every byte to one code point, so decoding never fails and is reversible.
    return value.decode("latin-1") if isinstance(value, bytes) else value


# RFC 9111 §5.2 has no whitespace around "=" (cache-directive = token [ "=" ( token /
# quoted-string ) ]). A malformed argument keeps a leading space, so a numeric directive
# reads it as invalid (hence stale) and an extension round-trips it.
_MALFORMED = " "


def _split_quoted(text: str) -> list[tuple[str, str | None]]:
    """Split ``name[=value], ...`` honouring quoted-strings (with quoted-pairs) in values."""
    items: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while i < n:
        end = i
        while end < n and text[end] not in ",=":
            end += 1
        raw_name = text[i:end]
        name = raw_name.strip(_OWS)
        value: str | None = None
        if end < n and text[end] == "=":
            prefix = _MALFORMED if raw_name[-1:] in (" ", "\t") else ""
            j = end + 1
            if j < n and text[j] == '"':
                chars: list[str] = []
                j += 1
                while j < n and text[j] != '"':
                    if text[j] == "\\" and j + 1 < n:
                        j += 1
                    chars.append(text[j])
                    j += 1
                end = text.find(",", j)
                end = n if end == -1 else end
                if text[j + 1 : end].strip(_OWS):  # junk after the closing quote
                    prefix = _MALFORMED
                value = prefix + "".join(chars)
            else:
                end = text.find(",", j)
                end = n if end == -1 else end
                value = prefix + text[j:end].rstrip(_OWS)
        items.append((name, value))
        i = end + 1
    return items


def _split_simple(text: str) -> list[tuple[str, str | None]]:
    items: list[tuple[str, str | None]] = []
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep:
            items.append((name.strip(_OWS), None))
            continue
        prefix = _MALFORMED if name[-1:] in (" ", "\t") else ""
        items.append((name.strip(_OWS), prefix + value.rstrip(_OWS)))
    return items


def _delta_seconds(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit():
        return None
    significant = value.lstrip("0")
    if len(significant) > 10:
        return MAX_DELTA_SECONDS
    return min(int(significant or "0"), MAX_DELTA_SECONDS)


def _field_names(value: str) -> tuple[str, ...]:
    names: list[str] = []
    for part in value.split(","):
        name = part.strip(_OWS).lower()
        if is_token(name) and name not in names:
            names.append(name)
    return tuple(names)


def parse_cache_control(values: Iterable[bytes | str]) -> CacheControl:
    """Parse every Cache-Control field line of a message, combined, into ``CacheControl``."""
    fields: dict[str, object] = {}
    no_cache_fields: list[str] = []
    private_fields: list[str] = []
    extensions: list[tuple[str, str | None]] = []
    for line in values:
        text = _to_text(line)
        if not text:
            continue
        pairs = _split_quoted(text) if '"' in text else _split_simple(text)
        for raw_name, value in pairs:
            name = raw_name.lower()
            if not is_token(name):
                continue
            seconds = _SECONDS_DIRECTIVES.get(name)
            if seconds is not None:
                attribute, invalid = seconds
                if attribute in fields:
                    continue  # §4.2.1: first occurrence wins
                if name == "max-stale" and value is None:
                    parsed: int | None = MAX_DELTA_SECONDS  # §5.2.1.2: any staleness
                else:
                    parsed = _delta_seconds(value)
                    if parsed is None:
                        parsed = invalid
                if parsed is not None:
                    fields[attribute] = parsed
                continue
            flag = _FLAG_DIRECTIVES.get(name)
            if flag is not None:
                fields[flag] = True
            elif name in ("no-cache", "private"):
                listed = _field_names(value) if value is not None else ()
                if not listed:
                    fields[name.replace("-", "_")] = True
                else:
                    target = no_cache_fields if name == "no-cache" else private_fields
                    target.extend(n for n in listed if n not in target)
            else:
                extensions.append((name, value))
    if not fields and not no_cache_fields and not private_fields and not extensions:
        return EMPTY_CACHE_CONTROL
    return CacheControl(
        no_cache_fields=tuple(no_cache_fields),
        private_fields=tuple(private_fields),
        extensions=tuple(extensions),
        **fields,  # type: ignore[arg-type]
    )


def _quote(value: str) -> str:
    if is_token(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_cache_control(cc: CacheControl) -> bytes:
    """Render ``cc`` as one Cache-Control field value in a canonical directive order.

    ``parse_cache_control([format_cache_control(cc)]) == cc`` for every parsed ``cc``. Returns
    ``b""`` when there is no directive. Text is encoded as latin-1 (the parser's decoding).
    """
    parts: list[str] = []
    if cc.public:
        parts.append("public")
    if cc.private:
        parts.append("private")
    if cc.private_fields:
        parts.append('private="' + ", ".join(cc.private_fields) + '"')
    if cc.no_cache:
        parts.append("no-cache")
    if cc.no_cache_fields:
        parts.append('no-cache="' + ", ".join(cc.no_cache_fields) + '"')
    for flag, name in (
        (cc.no_store, "no-store"),
        (cc.no_transform, "no-transform"),
        (cc.must_revalidate, "must-revalidate"),
        (cc.proxy_revalidate, "proxy-revalidate"),
        (cc.must_understand, "must-understand"),
        (cc.immutable, "immutable"),
        (cc.only_if_cached, "only-if-cached"),
    ):
        if flag:
            parts.append(name)
    for seconds, name in (
        (cc.max_age, "max-age"),
        (cc.s_maxage, "s-maxage"),
        (cc.min_fresh, "min-fresh"),
        (cc.stale_while_revalidate, "stale-while-revalidate"),
        (cc.stale_if_error, "stale-if-error"),
    ):
        if seconds is not None:
            parts.append(f"{name}={min(max(seconds, 0), MAX_DELTA_SECONDS)}")
    if cc.max_stale is not None:
        stale = min(max(cc.max_stale, 0), MAX_DELTA_SECONDS)
        parts.append("max-stale" if stale == MAX_DELTA_SECONDS else f"max-stale={stale}")
    for name, value in cc.extensions:
        parts.append(name if value is None else f"{name}={_quote(value)}")
    return ", ".join(parts).encode("latin-1", "replace")


def parse_pragma_no_cache(values: Iterable[bytes | str]) -> bool:
    """Whether a Pragma field carries ``no-cache`` (RFC 9111 §5.4; case-insensitive).

    Callers apply §5.4's precedence: Pragma is ignored when the request has Cache-Control.
    """
    for line in values:
        for part in _to_text(line).split(","):
            if part.strip(_OWS).lower() == "no-cache":
                return True
    return False
