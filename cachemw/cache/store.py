"""The response cache's Valkey operations, one round trip each.

Layout (every key of one URL shares the URL's hash tag, so each operation is one slot):

* ``{prefix}:cache:{pk}`` - a hash per primary cache key (RFC 9111 §2): ``vary`` (the Vary
  spec its variants were selected by), ``u`` (the URL, for prefix invalidation),
  ``e:<variant>`` (an encoded entry, RFC 9111 §4.1 secondary key) and ``f:<variant>`` (the
  fencing token that wrote it), ``p`` (a short hit-for-pass marker). Entry fields carry
  their own expiry (hash-field TTL), the hash lives as long as its longest field.
* ``{prefix}:cache:{pk}:lock:<variant>`` - the fill lock of one variant (single-flight).
* ``{prefix}:cache-tag:{digest}`` - the set of URL hashes carrying a tag.

A lookup is ``HMGET hash vary e:<variant> p``: one command, the entry bytes come back as is.
Invalidating a URL is one ``UNLINK`` of its hash, which removes every variant.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cachemw.cache.near import NearCache
from cachemw.valkey import Script, Valkey, digest

__all__ = ["CacheStore", "LockAttempt", "Lookup"]

FEATURE = "cache"
TAG_FEATURE = "cache-tag"
_LOCK_SCRIPT = Script("cache_lock")
_STORE_SCRIPT = Script("cache_store")
_RELEASE_SCRIPT = Script("cache_release")
_TAG_ADD_SCRIPT = Script("cache_tag_add")
_UNLINK_BATCH = 200


@dataclass(frozen=True, slots=True)
class Lookup:
    """What one HMGET found for a variant: the stored Vary spec, the entry bytes, the
    hit-for-pass marker and the fencing token that wrote the entry."""

    vary_spec: bytes | None
    entry: bytes | None
    hit_for_pass: bool
    fence: bytes | None = None


@dataclass(frozen=True, slots=True)
class LockAttempt:
    """``token`` when this caller leads the fill; otherwise how long the holder may keep it,
    or ``changed`` when the variant was stored since the caller read it."""

    token: bytes | None
    holder_ttl_ms: int = 0
    changed: bool = False


class CacheStore:
    """Valkey operations of the response cache (no HTTP rules here)."""

    __slots__ = ("_channel", "_max_variants", "near", "valkey")

    def __init__(
        self, valkey: Valkey, *, max_variants: int = 32, near: NearCache[Lookup] | None = None
    ) -> None:
        self.valkey = valkey
        self._max_variants = max_variants
        # Entries found, kept in process while key tracking vouches for them (near.py).
        self.near = near
        self._channel = f"{valkey.keyspace.prefix}:{FEATURE}:filled"

    @property
    def wakeup_channel(self) -> str:
        """The pub/sub channel on which lock releases are announced (message: lock key)."""
        return self._channel

    # -- key names -------------------------------------------------------------------------

    # Built on every request from our own hex digests: no per-call validation.

    def hash_key(self, primary_key: str) -> str:
        return self.valkey.keyspace.digest_key(FEATURE, primary_key)

    def lock_key(self, primary_key: str, variant: str) -> str:
        return self.valkey.keyspace.digest_key(FEATURE, primary_key, "lock", variant)

    def tag_key(self, tag: str) -> str:
        return self.valkey.keyspace.key(TAG_FEATURE, digest(tag))

    # -- hot path ----------------------------------------------------------------------------

    async def lookup(self, primary_key: str, variant: str) -> Lookup:
        """One HMGET: the URL's Vary spec, this variant's entry and fence, the pass marker.

        With a near cache: no command at all when it holds the variant."""
        hash_key = self.hash_key(primary_key)
        near = self.near
        if near is None:
            vary_spec, entry, marker, fence = await self.valkey.execute(
                "HMGET", hash_key, "vary", "e:" + variant, "p", "f:" + variant
            )
            return Lookup(vary_spec, entry, marker is not None, fence)
        found = near.get(hash_key, variant)
        if found is not None:
            return found
        ticket = near.begin(hash_key)  # before sending: a write after it spoils the reply
        try:
            vary_spec, entry, marker, fence = await self.valkey.execute(
                "HMGET", hash_key, "vary", "e:" + variant, "p", "f:" + variant
            )
        except BaseException:
            if ticket is not None:
                near.finish(ticket, variant, None, 0)
            raise
        found = Lookup(vary_spec, entry, marker is not None, fence)
        if ticket is not None:
            # Only entries: a miss or a pass marker is about to change (fill, expiry).
            kept = found if entry is not None and marker is None else None
            size = len(entry or b"") + len(vary_spec or b"") + len(fence or b"") + len(hash_key)
            near.finish(ticket, variant, kept, size + len(variant))
        return found

    def _forget_near(self, keys: Sequence[str | bytes]) -> None:
        # Our own writes: read-your-writes in this process without waiting for the message.
        if self.near is not None:
            self.near.invalidated(keys)

    async def acquire_lock(
        self, primary_key: str, variant: str, ttl_ms: int, *, seen_fence: bytes | None
    ) -> LockAttempt:
        """One EVALSHA: ``SET lock NX PX`` with a fencing token made from the server clock,
        unless the variant changed since the caller read it (``seen_fence``)."""
        taken, value = await self.valkey.run_script(
            _LOCK_SCRIPT,
            keys=[self.lock_key(primary_key, variant), self.hash_key(primary_key)],
            args=[secrets.token_hex(8), ttl_ms, "f:" + variant, seen_fence or b""],
            idempotent=False,
        )
        if taken == 1:
            return LockAttempt(token=bytes(value))
        if taken == 2:
            return LockAttempt(token=None, changed=True)
        return LockAttempt(token=None, holder_ttl_ms=max(0, int(value)))

    async def store(
        self,
        *,
        primary_key: str,
        lock_key: str,
        variant: str,
        vary_spec: bytes,
        entry: bytes,
        retention_ms: int,
        url: bytes,
        token: bytes,
    ) -> bool:
        """One EVALSHA: write the variant unless a newer fill owns it; release and wake.

        ``lock_key`` is the lock the caller holds (the variant it looked up, which differs
        from ``variant`` when the response brought a new Vary spec).

        ``False`` means a newer leader's entry (or lock) won and nothing was written.
        """
        hash_key = self.hash_key(primary_key)
        try:
            stored = await self.valkey.run_script(
                _STORE_SCRIPT,
                keys=[hash_key, lock_key],
                args=[
                    token,
                    vary_spec,
                    variant,
                    entry,
                    max(1, retention_ms),
                    url,
                    self._max_variants,
                    self._channel,
                ],
                idempotent=False,
            )
        finally:
            self._forget_near([hash_key])  # even after a timeout: the write may have run
        return bool(stored)

    async def release(
        self, *, primary_key: str, variant: str, token: bytes, hit_for_pass_ms: int = 0
    ) -> None:
        """One EVALSHA: drop our lock (if still ours), maybe mark hit-for-pass, wake waiters."""
        hash_key = self.hash_key(primary_key)
        try:
            await self.valkey.run_script(
                _RELEASE_SCRIPT,
                keys=[self.lock_key(primary_key, variant), hash_key],
                args=[token, hit_for_pass_ms, self._channel],
                idempotent=False,
            )
        finally:
            self._forget_near([hash_key])

    async def add_tags(self, primary_key: str, tags: Iterable[str], retention_ms: int) -> None:
        """Index the URL's hash under each tag (one pipeline; each tag set is its own slot)."""
        member = self.hash_key(primary_key)
        ttl = max(1, retention_ms)
        # One script per tag, sent concurrently: each tag set lives in its own slot.
        await asyncio.gather(
            *(
                self.valkey.run_script(
                    _TAG_ADD_SCRIPT, keys=[self.tag_key(tag)], args=[ttl, member], idempotent=True
                )
                for tag in tags
            )
        )

    # -- invalidation ---------------------------------------------------------------------

    async def unlink_urls(self, primary_keys: Sequence[str]) -> int:
        """Remove URLs with all their variants."""
        return await self.unlink_keys([self.hash_key(pk) for pk in primary_keys])

    async def unlink_keys(self, keys: Sequence[str | bytes]) -> int:
        removed = 0
        for start in range(0, len(keys), _UNLINK_BATCH):
            batch = keys[start : start + _UNLINK_BATCH]
            # One command per key: in Cluster every hash lives in its own slot.
            try:
                replies = await self.valkey.pipeline([("UNLINK", key) for key in batch])
            finally:
                self._forget_near(batch)
            removed += sum(int(reply) for reply in replies)
        return removed

    async def tag_members(self, tag: str) -> list[bytes]:
        members: list[bytes] = await self.valkey.execute("SMEMBERS", self.tag_key(tag))
        return list(members)

    async def forget_tag(self, tag: str) -> None:
        await self.valkey.execute("UNLINK", self.tag_key(tag), idempotent=True)

    async def url_of(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """The stored URL of each hash key (``None`` when gone or not a URL hash)."""
        if not keys:
            return []
        replies = await self.valkey.pipeline([("HGET", key, "u") for key in keys], idempotent=True)
        return [reply if isinstance(reply, bytes) else None for reply in replies]

    def scan_url_hashes(self) -> ScanIterator:
        """Every URL hash on every primary (SCAN, never KEYS); lock keys are skipped."""
        return ScanIterator(self)


class ScanIterator:
    """Async iterator over URL hash keys, built on :meth:`Valkey.scan`."""

    __slots__ = ("_inner",)

    def __init__(self, store: CacheStore) -> None:
        pattern = store.valkey.keyspace.pattern(FEATURE)
        self._inner = store.valkey.scan(pattern).__aiter__()

    def __aiter__(self) -> ScanIterator:
        return self

    async def __anext__(self) -> bytes:
        while True:
            key = await self._inner.__anext__()
            if b":lock:" not in key and not key.endswith(b":filled"):
                return key
