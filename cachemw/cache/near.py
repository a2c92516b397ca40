"""An in-process near cache in front of Valkey, kept coherent by key tracking.

Coherence rules (a near entry is served only when no invalidation for it can have been missed):

* Entries are filled and served only while key tracking is confirmed live, and only when the
  tracking was already live when the lookup that read them was *sent*: each fill carries the
  generation it began in, and every flush starts a new generation.
* The whole cache is flushed (new generation) when tracking is lost, when it is confirmed
  (messages before that moment were never sent), on an invalidation of every key (FLUSHALL)
  and when the circuit breaker leaves the closed state.
* An invalidation of a key removes its entries and spoils every lookup of that key still in
  flight: the reply may predate the write the message announces.
* Every entry lives at most ``ttl`` seconds from the moment its lookup was sent, which bounds
  what a lost message (or a hash-field expiry, which sends none) can cost.

No I/O here: the Valkey layer's :class:`~cachemw.valkey.tracking.KeyTracking` calls the
listener methods, the store calls :meth:`NearCache.get` / :meth:`begin` / :meth:`finish`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachemw.valkey import BreakerState

__all__ = ["NearCache", "NearTicket"]

V = TypeVar("V")
# Bookkeeping per entry beyond its payload (key tuple, entry record, index slot).
ENTRY_OVERHEAD = 200


@dataclass(frozen=True, slots=True)
class NearTicket:
    """A lookup in flight: the key it reads, the generation and time it was sent in."""

    hash_key: str
    generation: int
    started_at: float


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    size: int
    expires_at: float


class NearCache(Generic[V]):
    """A size-bounded LRU (entry count and bytes) of lookups, keyed by hash key + variant."""

    __slots__ = (
        "_by_hash",
        "_clock",
        "_dirty",
        "_entries",
        "_in_flight",
        "_live",
        "generation",
        "max_bytes",
        "max_entries",
        "size_bytes",
        "ttl",
    )

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_entries, bool) or max_entries < 1:
            raise ValueError(f"near_cache_entries must be >= 1, got {max_entries!r}")
        if isinstance(max_bytes, bool) or max_bytes < 1:
            raise ValueError(f"near_cache_max_bytes must be >= 1, got {max_bytes!r}")
        if not 0 < ttl <= 60:
            raise ValueError(f"near_cache_ttl must be > 0 and <= 60 seconds, got {ttl!r}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry[V]] = OrderedDict()
        self._by_hash: dict[str, set[str]] = {}
        self._in_flight: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._live = False
        self.generation = 0
        self.size_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def is_live(self) -> bool:
        return self._live

    # -- hot path ----------------------------------------------------------------------------

    def get(self, hash_key: str, variant: str) -> V | None:
        """The value stored for the variant, if it may still be served."""
        entries = self._entries
        entry = entries.get((hash_key, variant))
        if entry is None or not self._live:
            return None
        if self._clock() >= entry.expires_at:
            self._remove(hash_key, variant)
            return None
        entries.move_to_end((hash_key, variant))
        return entry.value

    def begin(self, hash_key: str) -> NearTicket | None:
        """Call before sending a lookup; ``None`` means its reply must not be kept."""
        if not self._live:
            return None
        in_flight = self._in_flight
        in_flight[hash_key] = in_flight.get(hash_key, 0) + 1
        return NearTicket(hash_key, self.generation, self._clock())

    def finish(self, ticket: NearTicket, variant: str, value: V | None, size: int) -> None:
        """Call once the lookup of ``ticket`` ended (``value=None`` when it failed or must
        not be kept); keeps the value only if nothing may have changed it meanwhile."""
        hash_key = ticket.hash_key
        dirty = hash_key in self._dirty
        remaining = self._in_flight.pop(hash_key, 1) - 1
        if remaining > 0:
            self._in_flight[hash_key] = remaining
        elif dirty:
            self._dirty.discard(hash_key)
        if (
            value is None
            or dirty
            or not self._live
            or ticket.generation != self.generation
            or size + ENTRY_OVERHEAD > self.max_bytes
        ):
            return
        self._remove(hash_key, variant)
        size += ENTRY_OVERHEAD
        self._entries[(hash_key, variant)] = _Entry(value, size, ticket.started_at + self.ttl)
        self._by_hash.setdefault(hash_key, set()).add(variant)
        self.size_bytes += size
        while len(self._entries) > self.max_entries or self.size_bytes > self.max_bytes:
            oldest_key, oldest_variant = next(iter(self._entries))
            self._remove(oldest_key, oldest_variant)

    # -- coherence events (InvalidationListener and the breaker) -------------------------------

    def tracking_confirmed(self) -> None:
        self.flush()
        self._live = True

    def tracking_lost(self) -> None:
        self._live = False
        self.flush()

    def invalidated(self, keys: Sequence[bytes | str] | None) -> None:
        if keys is None:
            self.flush()  # FLUSHALL / FLUSHDB: every key may have changed
            return
        in_flight = self._in_flight
        for raw in keys:
            hash_key = raw.decode("latin-1") if isinstance(raw, bytes) else raw
            if hash_key in in_flight:
                self._dirty.add(hash_key)
            variants = self._by_hash.get(hash_key)
            if variants is not None:
                for variant in list(variants):
                    self._remove(hash_key, variant)

    def breaker_changed(self, state: BreakerState) -> None:
        if state is not BreakerState.CLOSED:
            self.flush()

    def flush(self) -> None:
        """Drop every entry and spoil every lookup in flight."""
        self.generation += 1
        self._entries.clear()
        self._by_hash.clear()
        self._dirty.clear()
        self.size_bytes = 0

    def _remove(self, hash_key: str, variant: str) -> None:
        entry = self._entries.pop((hash_key, variant), None)
        if entry is None:
            return
        self.size_bytes -= entry.size
        variants = self._by_hash.get(hash_key)
        if variants is not None:
            variants.discard(variant)
            if not variants:
                del self._by_hash[hash_key]
