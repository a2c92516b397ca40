"""What a :class:`~tests.support.fault_proxy.FaultProxy` can do to the bytes it forwards.

A :class:`Fault` is plain data; a :class:`FaultBook` holds one proxy's faults and byte
counters. The proxy's control methods write to the book (on the proxy's loop); every link
reads it for each chunk, so a fault added now also hits connections opened earlier.
"""

from __future__ import annotations

import enum
import itertools
import time
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["upstream", "downstream", "both"]
Cut = Literal["reset", "close", "none"]

DEFAULT_DURATION = 10.0
MAX_DURATION = 120.0
DIRECTIONS = ("upstream", "downstream", "both")


class FaultKind(enum.Enum):
    LATENCY = "latency"
    BANDWIDTH = "bandwidth"
    SLICING = "slicing"
    BLACK_HOLE = "black_hole"
    RESET_AFTER = "reset_after"
    CLOSE_AFTER = "close_after"
    DROP_REPLY = "drop_reply"


_fault_ids = itertools.count(1)


@dataclass(eq=False, kw_only=True)
class Fault:
    """One active fault; returned by the fault methods so a test can clear or inspect it.

    ``times`` bounds how often a cutting fault (reset/close after N bytes, drop reply) fires;
    ``fired`` counts how often it did (e.g. how many requests a retrying client sent).
    """

    kind: FaultKind
    direction: Direction
    expires_at: float
    delay: float = 0.0
    jitter: float = 0.0
    rate: float = 0.0
    size: int = 0
    after_bytes: int = 0
    cut: Cut = "reset"
    drop: bool = False
    times: int | None = None
    fired: int = 0
    id: int = field(default_factory=lambda: next(_fault_ids))

    def is_active(self, now: float) -> bool:
        return now < self.expires_at and (self.times is None or self.fired < self.times)

    def hits(self, direction: Direction) -> bool:
        return self.direction in ("both", direction)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyStats:
    """Counters a test can compare before and after a call."""

    accepted: int
    open_links: int
    bytes_from_client: int
    bytes_from_server: int


class FaultBook:
    """One proxy's faults and byte counters; touched only from the proxy's event loop."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.bytes_from_client = 0
        self.bytes_from_server = 0

    def active(self, direction: Direction) -> list[Fault]:
        """Faults in force now for ``direction``; expired ones are forgotten."""
        now = time.monotonic()
        self.faults = [f for f in self.faults if f.is_active(now)]
        return [f for f in self.faults if f.hits(direction)]

    def black_hole(self, direction: Direction) -> Fault | None:
        return next((f for f in self.active(direction) if f.kind is FaultKind.BLACK_HOLE), None)

    def count(self, direction: Direction, size: int) -> None:
        if direction == "upstream":
            self.bytes_from_client += size
        else:
            self.bytes_from_server += size


def check_duration(duration: float) -> float:
    if not 0 < duration <= MAX_DURATION:
        raise ValueError(f"duration must be > 0 and <= {MAX_DURATION} seconds, got {duration!r}")
    return duration


def check_direction(direction: str) -> Direction:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return direction  # type: ignore[return-value]
