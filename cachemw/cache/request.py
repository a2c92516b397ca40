"""What the cache needs to know about one request, read once from the ASGI scope."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cachemw.cache.settings import CacheSettings, RouteCache
from cachemw.http.cache_control import EMPTY_CACHE_CONTROL, CacheControl, parse_cache_control
from cachemw.http.cache_control import parse_pragma_no_cache as _parse_pragma
from cachemw.http.keys import normalize_host, primary_cache_key
from cachemw.http.routing import route_path
from cachemw.http.validators import RequestConditions

__all__ = ["CONDITIONAL_FIELDS", "CacheRequest", "analyse_request", "request_url"]

# Fields that make a request conditional (RFC 9110 §13.1); a fill strips them so the
# origin sends a full, storable response and the cache answers the condition itself.
CONDITIONAL_FIELDS = frozenset(
    (b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"if-range")
)


@dataclass(slots=True)
class CacheRequest:
    """One request as the cache sees it; ``bypass`` names why the cache must stay away."""

    method: str
    headers: list[tuple[bytes, bytes]]
    route: RouteCache
    primary_key: str
    scope: Mapping[str, Any]
    host: bytes
    request_cc: CacheControl
    pragma_no_cache: bool
    conditions: RequestConditions | None
    has_authorization: bool
    has_range: bool
    bypass: str | None

    @property
    def url(self) -> bytes:
        """``scheme://host/root_path+raw_path[?query]`` (stored for prefix invalidation)."""
        return request_url(self.scope, normalize_host(self.host, self.scope.get("scheme", "http")))


def request_url(scope: Mapping[str, Any], host: bytes) -> bytes:
    """``scheme://host/root_path+raw_path[?query]`` as received."""
    scheme = str(scope.get("scheme", "http"))
    raw_path = scope.get("raw_path") or str(scope.get("path", "/")).encode("utf-8")
    root = str(scope.get("root_path", "")).encode("utf-8", "surrogateescape")
    if root and raw_path.startswith(root):
        root = b""  # servers differ on whether raw_path already includes root_path
    query: bytes = scope.get("query_string", b"")
    url = scheme.encode("ascii", "replace") + b"://" + host + root + raw_path
    return url + b"?" + query if query else url


def _cookie_bypass(values: list[bytes], ignored: tuple[str, ...]) -> bool:
    """True when some cookie is not on the ignore-list (analytics cookies are)."""
    for line in values:
        for pair in line.split(b";"):
            name = pair.split(b"=", 1)[0].strip().decode("latin-1")
            if name and not any(fnmatch.fnmatchcase(name, pattern) for pattern in ignored):
                return True
    return False


# What each request field means to the cache; everything else is skipped with one dict miss.
_HOST, _CC, _COOKIE, _AUTH, _PRAGMA, _LENGTH, _TE, _RANGE, _COND, _FORWARD = range(10)
_FIELD_KINDS: dict[bytes, int] = {
    b"host": _HOST,
    b"cache-control": _CC,
    b"cookie": _COOKIE,
    b"authorization": _AUTH,
    b"pragma": _PRAGMA,
    b"content-length": _LENGTH,
    b"transfer-encoding": _TE,
    b"range": _RANGE,
    **dict.fromkeys(CONDITIONAL_FIELDS, _COND),
}


def field_kinds(settings: CacheSettings) -> dict[bytes, int]:
    """The dispatch table for ``settings`` (forwarding headers that are not keyed bypass)."""
    kinds = dict(_FIELD_KINDS)
    for name in settings.forwarding_headers:
        if name not in settings.keyed_headers:
            kinds[name.encode("latin-1")] = _FORWARD
    return kinds


KeyMemo = dict[tuple[str, str, bytes, str, bytes, bytes], str]
KEY_MEMO_LIMIT = 4096


def analyse_request(
    scope: Mapping[str, Any],
    settings: CacheSettings,
    kinds: dict[bytes, int],
    key_memo: KeyMemo | None = None,
) -> CacheRequest:
    """Read the request's cache-relevant facts; never raises on hostile input.

    ``kinds`` is :func:`field_kinds` of ``settings`` (built once per middleware). ASGI
    gives lower-case field names. ``key_memo`` (one per middleware, bounded here) keeps
    recent primary keys: a hot URL's key is a dict lookup, not a digest, on every hit.
    """
    method: str = scope["method"]
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    route = settings.rules.route_for(route_path(scope) if "path" in scope else "/")
    host = b""
    cache_control: list[bytes] = []
    pragma: list[bytes] = []
    cookies: list[bytes] = []
    has_authorization = has_body = has_range = has_conditions = forwarded = False
    hosts = 0
    get_kind = kinds.get
    for name, value in headers:
        kind = get_kind(name)
        if kind is None:
            continue
        if kind == _HOST:
            hosts += 1
            host = value
        elif kind == _CC:
            cache_control.append(value)
        elif kind == _COOKIE:
            cookies.append(value)
        elif kind == _AUTH:
            has_authorization = True
        elif kind == _PRAGMA:
            pragma.append(value)
        elif kind == _LENGTH:
            has_body = has_body or value.strip() not in (b"0", b"")
        elif kind == _TE:
            has_body = True
        elif kind == _RANGE:
            has_range = True
        elif kind == _COND:
            has_conditions = True
        else:
            forwarded = True
    scheme = str(scope.get("scheme", "http"))
    if not host:
        server = scope.get("server")
        if server:
            host = f"{server[0]}:{server[1]}".encode("latin-1")
    raw_path: bytes = scope.get("raw_path") or str(scope.get("path", "/")).encode("utf-8")
    query: bytes = scope.get("query_string", b"")
    bypass: str | None = None
    if not route.enabled:
        bypass = "route"
    elif forwarded:
        bypass = "forwarding-header"
    elif hosts > 1:
        # RFC 9112 §3.2: such a request is invalid; the app might read either Host.
        bypass = "duplicate-host"
    elif has_body:
        bypass = "request-body"
    elif has_authorization and not route.allow_authorization:
        bypass = "authorization"
    elif cookies and not route.allow_cookies and _cookie_bypass(cookies, settings.ignored_cookies):
        bypass = "cookie"
    elif len(raw_path) + len(query) + len(host) > settings.max_url_length:
        bypass = "url-too-long"
    primary_key = ""
    if bypass is None:
        root_path = str(scope.get("root_path", ""))
        facts = (method, scheme, host, root_path, raw_path, query)
        memoized = None if key_memo is None else key_memo.get(facts)
        if memoized is not None:
            primary_key = memoized
        else:
            primary_key = primary_cache_key(
                method=method,
                scheme=scheme,
                host=host,
                root_path=root_path,
                raw_path=raw_path,
                query_string=query,
                normalize_query=settings.normalize_query,
            ).decode("ascii")
            if key_memo is not None:
                if len(key_memo) >= KEY_MEMO_LIMIT:
                    key_memo.clear()
                key_memo[facts] = primary_key
    return CacheRequest(
        method=method,
        headers=headers,
        route=route,
        primary_key=primary_key,
        scope=scope,
        host=host,
        request_cc=parse_cache_control(cache_control) if cache_control else EMPTY_CACHE_CONTROL,
        pragma_no_cache=_parse_pragma(pragma) if pragma else False,
        conditions=RequestConditions.from_headers(headers) if has_conditions else None,
        has_authorization=has_authorization,
        has_range=has_range,
        bypass=bypass,
    )
