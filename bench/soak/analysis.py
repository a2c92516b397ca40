"""Turns what the load recorded into the soak's figures; pure functions over plain data."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import median

from bench.soak.samples import Admission, Sample, SoakRecord, Update

__all__ = [
    "LimitFigures",
    "RestartWindow",
    "SessionFigures",
    "SoakFigures",
    "WorkerFigures",
    "analyse",
    "certain_overshoot",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartWindow:
    """Seconds since the load started. Valkey is away from ``stopped`` to ``started``; the
    window for session 5xx closes ``grace`` seconds after ``started`` (the circuit breaker
    waits its reset timeout before it probes Valkey again)."""

    stopped: float
    started: float
    closes: float

    def contains(self, moment: float) -> bool:
        return self.stopped <= moment <= self.closes


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFigures:
    acknowledged: int
    acknowledged_before_restart: int
    acknowledged_while_stopping: int  # by the old server between SIGTERM and its exit
    acknowledged_after_restart: int
    found: int
    lost_in_restart: int  # acknowledged before Valkey stopped (no persistence): expected
    lost_after_restart: int  # acknowledged after Valkey was back: must be 0
    lost_after_restart_examples: list[str]  # "user sku acknowledged at +t s", first ten
    sessions_gone_at_end: int
    unverified: int  # acknowledged by a shopper whose cart could not be read at the end


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitFigures:
    rule: str
    limit: int
    window: float
    on_error: str
    admitted_checked: int
    admitted_unchecked: int  # fail-open: admitted without asking Valkey
    admitted_unchecked_outside_restart: int
    median_decision_interval: float  # seconds: how precisely a decision's moment is known
    rejected_429: int
    unavailable_503: int
    overshoot_outside_restart: int  # must be 0
    overshoot_around_restart: int  # windows that saw the counters wiped: informative


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerFigures:
    pid: int
    requests: int
    invalidation_errors: int
    loop_stalls: int  # event loop late by more than 100 ms
    longest_stall: float
    stall_moments: list[str]  # the five longest: "+t s (n ms)"


@dataclass(frozen=True, slots=True, kw_only=True)
class SoakFigures:
    seconds: float
    requests: int
    by_kind: dict[str, int]
    statuses: dict[int, int]
    workers: list[WorkerFigures]
    hot_read_hits: int
    hot_reads: int
    transport_errors: int
    non_session_5xx: list[str]  # "kind status at +t s", each one explained in SOAK.md
    session_5xx_inside_window: int
    session_5xx_inside_by_cause: dict[str, int]  # "cart 503 from the session store": count
    session_5xx_outside_window: list[str]
    last_session_5xx: float | None
    restart: RestartWindow
    sessions: SessionFigures
    limits: list[LimitFigures]
    stale_reads_after_failed_invalidation: int
    stale_reads_other: int  # despite a successful invalidation of a newer version
    # Seconds from the first newer update's acknowledgement to the last stale read of the
    # version it replaced (failed invalidations only): s-maxage bounds it.
    longest_stale_after_failed_invalidation: float = 0.0
    no_answer: list[str] = field(default_factory=list)  # "kind at +t s ...", first ten


def certain_overshoot(admissions: Sequence[Admission], limit: int, window: float) -> int:
    """The largest number of checked admissions that certainly fell inside one window of
    ``window`` seconds, minus ``limit`` (0 if none is over).

    Each decision happened at an unknown moment inside its [earliest, latest] interval; a set
    whose intervals all lie within less than ``window`` seconds was certainly decided inside
    one window, so a correct sliding-window limiter never admits more than ``limit`` of them.
    This is a lower bound on the real overshoot, never a false alarm from clock jitter.
    """
    ordered = sorted((a.earliest, a.latest) for a in admissions if a.checked)
    worst = 0
    for index, (start, _) in enumerate(ordered):
        end = start + window
        last = bisect_right(ordered, (end, float("-inf")), lo=index)
        inside = sum(1 for _, latest in ordered[index:last] if latest < end)
        worst = max(worst, inside)
    return max(0, worst - limit)


def _limit_figures(
    record: SoakRecord,
    rule: str,
    kind: str,
    limit: tuple[int, float],
    on_error: str,
    restart: RestartWindow,
) -> LimitFigures:
    count, window = limit
    origin = record.timeline.load_started
    admissions = record.admissions.get(rule, [])
    stopped = origin + restart.stopped
    started = origin + restart.started
    # A window that ends before Valkey stopped or starts after it answered again saw one
    # intact set of counters; the others saw them wiped (no persistence).
    before = [a for a in admissions if a.latest < stopped]
    after = [a for a in admissions if a.earliest > started]
    around = [
        a for a in admissions if a.latest >= stopped - window and a.earliest <= started + window
    ]
    samples = [s for s in record.samples if s.kind == kind and _is_limited(s.status)]
    statuses = Counter(s.status for s in samples)
    return LimitFigures(
        rule=rule,
        limit=count,
        window=window,
        on_error=on_error,
        admitted_checked=sum(1 for a in admissions if a.checked),
        admitted_unchecked=sum(1 for a in admissions if not a.checked),
        admitted_unchecked_outside_restart=sum(
            1 for a in admissions if not a.checked and not restart.contains(a.earliest - origin)
        ),
        median_decision_interval=median([a.latest - a.earliest for a in admissions] or [0.0]),
        rejected_429=statuses[429],
        unavailable_503=statuses[503],
        overshoot_outside_restart=max(
            certain_overshoot(before, count, window), certain_overshoot(after, count, window)
        ),
        overshoot_around_restart=certain_overshoot(around, count, window),
    )


def _is_limited(status: int) -> bool:
    return status in (429, 503)


def analyse(
    record: SoakRecord,
    *,
    breaker_grace: float,
    search_limit: tuple[int, float],
    login_limit: tuple[int, float],
) -> SoakFigures:
    timeline = record.timeline
    origin = timeline.load_started
    started = timeline.valkey_started - origin
    restart = RestartWindow(
        stopped=timeline.valkey_stopped - origin, started=started, closes=started + breaker_grace
    )
    samples = record.samples
    non_session_5xx: list[str] = []
    session_outside: list[str] = []
    session_inside = 0
    inside_causes: Counter[str] = Counter()
    last_session_5xx: float | None = None
    for sample in samples:
        if sample.status < 500:
            continue
        moment = sample.ended - origin
        label = (
            f"{sample.kind} {sample.status} at +{moment:.2f} s (worker {sample.worker}, "
            f"took {sample.ended - sample.started:.3f} s{_stall_note(record, sample)}): "
            f"{sample.detail}"
        )
        if not sample.is_session_route:
            non_session_5xx.append(label)
            continue
        last_session_5xx = max(moment, last_session_5xx or moment)
        if restart.contains(moment):
            session_inside += 1
            inside_causes[f"{sample.kind} {sample.status} from {_layer(sample.detail)}"] += 1
        else:
            session_outside.append(label)
    hot = [s for s in samples if s.kind == "hot_read" and s.status == 200]
    stale_failed, stale_other, longest_stale = _stale_reads(record)
    no_answer = [
        f"{s.kind} at +{s.started - origin:.2f} s (gave up after {s.ended - s.started:.3f} s)"
        for s in samples
        if s.status == 0
    ]
    return SoakFigures(
        seconds=timeline.load_ended - origin,
        requests=len(samples),
        by_kind=dict(sorted(Counter(s.kind for s in samples).items())),
        statuses=dict(sorted(Counter(s.status for s in samples).items())),
        workers=_worker_figures(record),
        hot_read_hits=sum(1 for s in hot if s.cache_hit),
        hot_reads=len(hot),
        transport_errors=sum(1 for s in samples if s.status == 0),
        non_session_5xx=non_session_5xx,
        session_5xx_inside_window=session_inside,
        session_5xx_inside_by_cause=dict(sorted(inside_causes.items())),
        session_5xx_outside_window=session_outside,
        last_session_5xx=last_session_5xx,
        restart=restart,
        sessions=_session_figures(record),
        limits=[
            _limit_figures(record, "search", "search", search_limit, "open", restart),
            _limit_figures(record, "login", "login", login_limit, "closed", restart),
        ],
        stale_reads_after_failed_invalidation=stale_failed,
        stale_reads_other=stale_other,
        longest_stale_after_failed_invalidation=longest_stale,
        no_answer=no_answer[:10],
    )


def _layer(detail: str) -> str:
    """Which part of the stack answered a 5xx, from its problem+json detail."""
    if "rate limit" in detail:
        return "the login limit (fail-closed)"
    if "session store" in detail:
        return "the session store (fail-closed)"
    return "elsewhere: " + (detail[:60] or "no body")


STALL_CHECK_INTERVAL = 0.05  # the app's LoopStallMonitor interval


def _stall_note(record: SoakRecord, sample: Sample) -> str:
    """Names the worker's event-loop stall that overlapped this request, if one did."""
    stats = record.workers.get(sample.worker or 0)
    if stats is None:
        return ""
    for began, late in stats.loop_stalls:
        if began <= sample.ended and began + late + STALL_CHECK_INTERVAL >= sample.started:
            moment = began - record.timeline.load_started
            return f"; its event loop stalled {late * 1000:.0f} ms at +{moment:.2f} s"
    return ""


def _worker_figures(record: SoakRecord) -> list[WorkerFigures]:
    answered = Counter(s.worker for s in record.samples if s.worker is not None)
    origin = record.timeline.load_started
    figures = []
    for pid in sorted(answered.keys() | record.workers.keys()):
        stats = record.workers.get(pid)
        stalls = [] if stats is None else stats.loop_stalls
        longest = sorted(stalls, key=lambda stall: stall[1], reverse=True)[:5]
        figures.append(
            WorkerFigures(
                pid=pid,
                requests=answered[pid],
                invalidation_errors=-1 if stats is None else stats.invalidation_errors,
                loop_stalls=len(stalls),
                longest_stall=max((late for _, late in stalls), default=0.0),
                stall_moments=[
                    # Signed: a stall during the warm-up comes before the load started.
                    f"{at - origin:+.2f} s ({late * 1000:.0f} ms)"
                    for at, late in longest
                ],
            )
        )
    return figures


def _session_figures(record: SoakRecord) -> SessionFigures:
    timeline = record.timeline
    found = lost_in_restart = lost_after = before = after = stopping = 0
    examples: list[str] = []
    unverified = 0
    for write in record.cart_writes:
        if write.user not in record.carts_found:
            unverified += 1
            continue
        cart = record.carts_found[write.user]
        present = cart is not None and write.sku in cart
        found += present
        # Until the new server answers, an acknowledged write can only have reached the old
        # one (which serves commands for a moment after SIGTERM while it shuts down).
        if write.acknowledged_at < timeline.valkey_started:
            before += 1
            stopping += write.acknowledged_at >= timeline.valkey_stopped
            lost_in_restart += not present
            continue
        after += 1
        if not present:
            lost_after += 1
            if len(examples) < 10:
                moment = write.acknowledged_at - timeline.load_started
                examples.append(f"{write.user} {write.sku} acknowledged at +{moment:.2f} s")
    return SessionFigures(
        acknowledged=len(record.cart_writes),
        acknowledged_before_restart=before,
        acknowledged_while_stopping=stopping,
        acknowledged_after_restart=after,
        found=found,
        lost_in_restart=lost_in_restart,
        lost_after_restart=lost_after,
        lost_after_restart_examples=examples,
        unverified=unverified,
        sessions_gone_at_end=sum(1 for cart in record.carts_found.values() if cart is None),
    )


def _stale_reads(record: SoakRecord) -> tuple[int, int, float]:
    """Reads that began after an update was acknowledged yet returned an older version:
    (after failed invalidations only, others, the longest such staleness in seconds). A stale
    entry is expected while every update newer than it failed to invalidate (the cache fails
    open; s-maxage bounds it)."""
    updates: dict[int, list[Update]] = {}
    for update in record.updates:
        updates.setdefault(update.product_id, []).append(update)
    failed_only = other = 0
    longest = 0.0
    for read in record.reads:
        newer = [
            u
            for u in updates.get(read.product_id, [])
            if u.acknowledged_at < read.started and u.version > read.version
        ]
        if not newer:
            continue
        if any(u.invalidated for u in newer):
            other += 1
        else:
            failed_only += 1
            first = min(u.acknowledged_at for u in newer)
            longest = max(longest, read.started - first)
    return failed_only, other, longest
