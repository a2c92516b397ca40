"""Removing cached responses: by URL, by URL prefix, by tag; and RFC 9111 §4.4.

Nothing here can be triggered by a client header: these are server-side APIs (and the
unsafe-method rule). They never use KEYS: URLs are digested keys, tags are index sets,
prefixes are found with SCAN on every primary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from cachemw.cache.store import CacheStore
from cachemw.http.keys import normalize_host, primary_cache_key
from cachemw.valkey import Valkey

__all__ = ["CacheInvalidator", "keys_invalidated_by", "primary_key_for_url"]

_SCAN_BATCH = 200


def primary_key_for_url(
    url: str | bytes, *, root_path: str = "", normalize_query: bool = False
) -> str | None:
    """The primary cache key of a GET to ``url`` (``scheme://host[:port]/path?query``).

    The path is used as written (percent-escapes are not decoded, as the cache keys raw
    paths). ``root_path`` is the mount prefix the app is served under, if any. ``None``
    when ``url`` is not an absolute http(s) URL.
    """
    text = url.decode("latin-1") if isinstance(url, bytes) else url
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        return None
    host = parts.netloc.rpartition("@")[2].encode("latin-1", "replace")
    path = (parts.path or "/").encode("latin-1", "replace")
    root = root_path.encode("latin-1", "replace")
    if root and path.startswith(root):
        path = path[len(root) :]
    else:
        root_path = ""
    return primary_cache_key(
        method="GET",
        scheme=scheme,
        host=normalize_host(host, scheme),
        root_path=root_path,
        raw_path=path,
        query_string=parts.query.encode("latin-1", "replace"),
        normalize_query=normalize_query,
    ).decode("ascii")


def keys_invalidated_by(
    scope: Mapping[str, Any],
    headers: Iterable[tuple[bytes, bytes]],
    *,
    normalize_query: bool = False,
) -> list[str]:
    """RFC 9111 §4.4: the target URI, plus Location/Content-Location on the same origin.

    A non-error response to an unsafe request means the resource may have changed.
    """
    scheme = str(scope.get("scheme", "http"))
    host = b""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value
            break
    host = normalize_host(host, scheme)
    root_path = str(scope.get("root_path", ""))
    raw_path: bytes = scope.get("raw_path") or str(scope.get("path", "/")).encode("utf-8")
    keys = [
        primary_cache_key(
            method="GET",
            scheme=scheme,
            host=host,
            root_path=root_path,
            raw_path=raw_path,
            query_string=scope.get("query_string", b""),
            normalize_query=normalize_query,
        ).decode("ascii")
    ]
    origin = scheme.encode() + b"://" + host
    for name, value in headers:
        if name not in (b"location", b"content-location"):
            continue
        target = value.strip()
        if target.startswith(b"/") and not target.startswith(b"//"):
            target = origin + target
        key = primary_key_for_url(target, root_path=root_path, normalize_query=normalize_query)
        # §4.4: only same-origin URIs, so a response cannot purge another site's entries.
        if key is not None and _same_origin(target, scheme, host) and key not in keys:
            keys.append(key)
    return keys


def _same_origin(target: bytes, scheme: str, host: bytes) -> bool:
    try:
        parts = urlsplit(target.decode("latin-1"))
    except ValueError:
        return False
    other = normalize_host(parts.netloc.rpartition("@")[2].encode("latin-1"), parts.scheme)
    return parts.scheme.lower() == scheme.lower() and other == host


class CacheInvalidator:
    """Server-side invalidation of the response cache (works in Cluster; never KEYS)."""

    __slots__ = ("root_path", "store")

    def __init__(self, valkey: Valkey, *, root_path: str = "") -> None:
        self.store = CacheStore(valkey)
        self.root_path = root_path

    async def invalidate_url(self, *urls: str, normalize_query: bool = False) -> int:
        """Remove each URL with all its variants; returns how many were stored."""
        keys: list[str] = []
        for url in urls:
            key = primary_key_for_url(
                url, root_path=self.root_path, normalize_query=normalize_query
            )
            if key is None:
                raise ValueError(f"invalidate_url needs absolute http(s) URLs, got {url!r}")
            keys.append(key)
        return await self.store.unlink_urls(keys)

    async def invalidate_tags(self, *tags: str) -> int:
        """Remove every URL stored with any of ``tags`` (surrogate keys)."""
        removed = 0
        for tag in tags:
            members = await self.store.tag_members(tag)
            removed += await self.store.unlink_keys(members)
            await self.store.forget_tag(tag)
        return removed

    async def invalidate_prefix(self, prefix: str) -> int:
        """Remove every URL starting with ``prefix`` (e.g. ``https://shop.test/api/``).

        SCAN over every primary: cost grows with the number of cached URLs, so prefer tags
        for frequent invalidations.
        """
        wanted = prefix.encode("latin-1", "replace")
        removed = 0
        batch: list[bytes] = []
        async for key in self.store.scan_url_hashes():
            batch.append(key)
            if len(batch) >= _SCAN_BATCH:
                removed += await self._unlink_matching(batch, wanted)
                batch = []
        if batch:
            removed += await self._unlink_matching(batch, wanted)
        return removed

    async def _unlink_matching(self, keys: Sequence[bytes], prefix: bytes) -> int:
        urls = await self.store.url_of(keys)
        matching = [k for k, url in zip(keys, urls, strict=True) if url and url.startswith(prefix)]
        return await self.store.unlink_keys(matching) if matching else 0
