"""What the load records: one ``Sample`` per request, plus the run's timeline."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "SESSION_KINDS",
    "Admission",
    "CartWrite",
    "ProductRead",
    "Sample",
    "SoakRecord",
    "Timeline",
    "Update",
    "WorkerStats",
]

# Routes whose requests load the session (they fail closed: 503 while Valkey is away).
SESSION_KINDS = frozenset({"login", "cart", "me"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    kind: str  # hit_read, miss_read, update, login, cart, search, me, ...
    started: float  # wall-clock seconds (time.time()), as the workers stamp theirs
    ended: float
    status: int  # 0: no HTTP answer (transport error or client timeout)
    worker: int | None = None
    cache_hit: bool = False
    detail: str = ""  # for 5xx: the start of the body, to tell which layer answered

    @property
    def is_session_route(self) -> bool:
        return self.kind in SESSION_KINDS


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """A request the limiter let through; the decision fell inside [earliest, latest]."""

    identity: str
    earliest: float
    latest: float
    checked: bool  # False: admitted unchecked (fail-open, no RateLimit field in the answer)


@dataclass(frozen=True, slots=True, kw_only=True)
class CartWrite:
    user: str
    sku: str
    acknowledged_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    product_id: int
    version: int
    acknowledged_at: float
    invalidated: bool  # False: the app's invalidate_tags failed (Valkey unavailable)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductRead:
    product_id: int
    version: int
    started: float


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStats:
    """What a worker reports about itself at the end (its ``/stats``)."""

    invalidation_errors: int
    loop_stalls: list[tuple[float, float]]  # (wall time the stall began, seconds late)


@dataclass(slots=True, kw_only=True)
class Timeline:
    load_started: float = 0.0
    valkey_stopped: float = 0.0  # just before stop()
    valkey_started: float = 0.0  # start() returned: answering PING again
    load_ended: float = 0.0


@dataclass(slots=True, kw_only=True)
class SoakRecord:
    """Everything the load saw; the analysis turns it into figures."""

    samples: list[Sample] = field(default_factory=list)
    admissions: dict[str, list[Admission]] = field(default_factory=dict)  # by rule name
    cart_writes: list[CartWrite] = field(default_factory=list)
    carts_found: dict[str, frozenset[str] | None] = field(default_factory=dict)  # None: 401
    updates: list[Update] = field(default_factory=list)
    reads: list[ProductRead] = field(default_factory=list)
    timeline: Timeline = field(default_factory=Timeline)
    workers: dict[int, WorkerStats] = field(default_factory=dict)
