"""Cache-key derivation (RFC 9111 §2 primary key, §4.1 secondary keys).

Keys are digests of an *injective* encoding: every component is written as a netstring
(``b"<decimal length>:" + bytes``), so no two different component tuples share an encoding,
whatever bytes (separators, ``{}``, NUL, newlines) they contain. Digest: BLAKE2b-128, hex.

Decisions, each guarding against a known cache-poisoning or collision bug:

* the target is ``root_path`` plus the **raw** path bytes, never the percent-decoded path, so
  ``/a%2Fb`` and ``/a/b`` (one route or not) never share an entry;
* scheme and the normalised ``host[:port]`` are part of the key (RFC 9111 §2: the target
  URI), with only the scheme's default port dropped;
* GET and HEAD share a key, so a HEAD is answered from the stored GET response (RFC 9110
  §9.3.2 defines HEAD as GET without content); any other method is part of the key, so a
  cacheable POST (RFC 9111 §2 lets a cache key on more than the URI) can never be answered
  from a GET entry;
* the query is either the raw bytes or, when opted in, the multiset Starlette's
  ``request.query_params`` would see, sorted by name (values of one name keep their order,
  so ``getlist``/``[]`` are unchanged); the two forms are tagged so they never collide;
* for Vary, an absent header differs from an empty one, and several field lines are combined
  with ``", "`` after trimming (§4.1 allows combining; nothing more is normalised, so two
  requests share a variant only when their values are semantically identical).
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl

__all__ = [
    "normalize_host",
    "primary_cache_key",
    "query_params",
    "variant_key",
]

# Bumped when the encoding changes, so old entries become misses, never wrong hits.
_KEY_VERSION = b"cachemw-key-v1"
_DEFAULT_PORTS: dict[str, bytes] = {"http": b"80", "https": b"443", "ws": b"80", "wss": b"443"}
# Methods whose key component is GET: HEAD is served from the GET entry.
_GET_LIKE = frozenset(("GET", "HEAD"))
_OWS = b" \t"
_ABSENT = b"-"
_PRESENT = b"+"


def _netstring(component: bytes) -> bytes:
    return b"%d:%b" % (len(component), component)


def _text(value: str) -> bytes:
    # surrogatepass makes the encoding total and injective on every Python str.
    return value.encode("utf-8", "surrogatepass")


def _digest(material: bytes) -> bytes:
    return hashlib.blake2b(material, digest_size=16).hexdigest().encode("ascii")


def normalize_host(host: bytes, scheme: str) -> bytes:
    """Lower-case ``host`` and drop the scheme's default port (``:80``/``:443``).

    A port is canonicalised (leading zeros dropped); anything that does not look like
    ``name[:digits]`` or ``[ipv6][:digits]`` is returned lower-cased but otherwise as is.
    """
    value = host.strip(_OWS).lower()
    if value.startswith(b"["):
        end = value.find(b"]")
        if end == -1:
            return value
        name, rest = value[: end + 1], value[end + 1 :]
        if not rest:
            return name
        if rest[:1] != b":":
            return value
        port = rest[1:]
    else:
        name, sep, port = value.rpartition(b":")
        if not sep or b":" in name:  # no port, or not a host[:port] at all
            return value
    if not port:
        return name  # RFC 3986 §3.2.3: an empty port means the default port
    if not port.isdigit():
        return value
    port = port.lstrip(b"0") or b"0"
    if port == _DEFAULT_PORTS.get(scheme.lower()):
        return name
    return name + b":" + port


def query_params(query_string: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs Starlette's ``Request.query_params`` holds for this query.

    Same semantics as Starlette's ``QueryParams(bytes)``: latin-1 decode, then
    ``parse_qsl(..., keep_blank_values=True)`` (so ``a`` == ``a=``, ``+`` is a space, empty
    ``&&`` pieces vanish, percent-escapes decode as UTF-8 with replacement).
    """
    return parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)


def _query_component(query_string: bytes, normalize_query: bool) -> bytes:
    if not normalize_query:
        return b"r" + query_string
    pairs = sorted(query_params(query_string), key=lambda pair: pair[0])
    return b"n" + b"".join(_netstring(_text(k)) + _netstring(_text(v)) for k, v in pairs)


def primary_cache_key(
    *,
    method: str,
    scheme: str,
    host: bytes,
    root_path: str,
    raw_path: bytes,
    query_string: bytes,
    normalize_query: bool = False,
) -> bytes:
    """Hex digest identifying the target resource of a request (RFC 9111 §2).

    ``raw_path`` is the ASGI ``raw_path`` (bytes as received); pass ``root_path`` as ASGI
    gives it. ``method`` is case-sensitive (RFC 9110 §9.1); GET and HEAD share a key.
    """
    method_component = b"GET" if method in _GET_LIKE else _text(method)
    material = b"".join(
        (
            _netstring(_KEY_VERSION),
            _netstring(method_component),
            _netstring(_text(scheme.lower())),
            _netstring(normalize_host(host, scheme)),
            _netstring(_text(root_path)),
            _netstring(raw_path),
            _netstring(_query_component(query_string, normalize_query)),
        )
    )
    return _digest(material)


def variant_key(vary: tuple[str, ...], request_headers: list[tuple[bytes, bytes]]) -> bytes:
    """Hex digest of the request's values for the ``vary`` field names (RFC 9111 §4.1).

    ``vary`` is ``parse_vary``'s output (lower-case names). Header names are matched
    case-insensitively; repeated lines of one field are combined in order.
    """
    if not vary:
        return _digest(_netstring(_KEY_VERSION))
    encoded_names = [_text(name.lower()) for name in vary]
    wanted: dict[bytes, list[bytes]] = {name: [] for name in encoded_names}
    for name, value in request_headers:
        lines = wanted.get(name.lower())
        if lines is not None:
            lines.append(value.strip(_OWS))
    parts = [_netstring(_KEY_VERSION)]
    for encoded in encoded_names:
        lines = wanted[encoded]
        parts.append(_netstring(encoded))
        if lines:
            parts.append(_PRESENT + _netstring(b", ".join(lines)))
        else:
            parts.append(_ABSENT)
    return _digest(b"".join(parts))
