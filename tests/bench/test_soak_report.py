"""The soak report without load: what SOAK.md says for given figures, and how recorded
requests become figures (5xx windows, lost writes, limit overshoot)."""

from __future__ import annotations

import dataclasses

import pytest

from bench.soak.analysis import (
    LimitFigures,
    RestartWindow,
    SessionFigures,
    SoakFigures,
    WorkerFigures,
    analyse,
    certain_overshoot,
)
from bench.soak.report import (
    CLUSTER_MARKER,
    RssFigures,
    RunParameters,
    format_report,
    merge_report,
)
from bench.soak.samples import (
    Admission,
    CartWrite,
    ProductRead,
    Sample,
    SoakRecord,
    Timeline,
    Update,
)
from bench.soak.topology import FailoverRecord

PARAMS = RunParameters(
    date="2026-11-25 11:00 UTC",
    seconds=60,
    workers=2,
    users={"readers": 6, "shoppers": 8},
    pause=0.05,
    valkey_url="redis://127.0.0.1:6399/0",
    app_url="http://127.0.0.1:8123",
    restart_pause=2.0,
    search_limit=(20, 2.0),
    login_limit=(4, 2.0),
    machine="Linux x86_64, 2 CPUs",
    valkey_timeout=0.25,
)
SESSIONS = SessionFigures(
    acknowledged=1000,
    acknowledged_before_restart=600,
    acknowledged_while_stopping=3,
    acknowledged_after_restart=400,
    found=400,
    lost_in_restart=600,
    lost_after_restart=0,
    lost_after_restart_examples=[],
    sessions_gone_at_end=0,
    unverified=0,
)
LIMITS = [
    LimitFigures(
        rule="search",
        limit=20,
        window=2.0,
        on_error="open",
        admitted_checked=500,
        admitted_unchecked=40,
        admitted_unchecked_outside_restart=0,
        median_decision_interval=0.0021,
        rejected_429=900,
        unavailable_503=0,
        overshoot_outside_restart=0,
        overshoot_around_restart=0,
    )
]
FIGURES = SoakFigures(
    seconds=60.2,
    requests=12345,
    by_kind={"cart": 3000, "hot_read": 5000},
    statuses={200: 11000, 429: 900, 503: 445},
    workers=[
        WorkerFigures(
            pid=101,
            requests=6000,
            invalidation_errors=3,
            loop_stalls=1,
            longest_stall=0.27,
            stall_moments=["+7.59 s (270 ms)"],
        )
    ],
    hot_read_hits=4500,
    hot_reads=5000,
    transport_errors=0,
    non_session_5xx=[],
    session_5xx_inside_window=445,
    session_5xx_inside_by_cause={
        "cart 503 from the session store (fail-closed)": 300,
        "login 503 from the login limit (fail-closed)": 145,
    },
    session_5xx_outside_window=[],
    last_session_5xx=33.5,
    restart=RestartWindow(stopped=29.0, started=31.1, closes=34.1),
    sessions=SESSIONS,
    limits=LIMITS,
    stale_reads_after_failed_invalidation=0,
    stale_reads_other=0,
)
RSS = RssFigures(start={101: 60_000, 102: 61_000}, end={101: 62_048, 102: 61_500})


def test_report_names_the_date_and_the_parameters() -> None:
    report = format_report(PARAMS, FIGURES, RSS)
    assert "2026-11-25 11:00 UTC" in report
    assert "uvicorn `--workers 2`" in report
    assert "60 s; 6 readers, 8 shoppers; 50 ms pause" in report
    assert "Valkey command budget 250 ms" in report
    assert "search 20 per 2 s for one client address (fail-open)" in report


def test_report_gives_requests_rate_and_hit_ratio() -> None:
    report = format_report(PARAMS, FIGURES, RSS)
    assert "12345 requests in 60.2 s (205/s)" in report
    assert "4500 of 5000 (90.0%)" in report
    assert "| 503 | 445 |" in report


def test_session_5xx_inside_the_window_are_broken_down_by_cause() -> None:
    report = format_report(PARAMS, FIGURES, RSS)
    assert "  - cart 503 from the session store (fail-closed): 300" in report
    assert "  - login 503 from the login limit (fail-closed): 145" in report


def test_report_passes_when_every_promise_holds() -> None:
    report = format_report(PARAMS, FIGURES, RSS)
    assert "**Result: PASS** (5 of 5 promises held)" in report


def test_non_session_5xx_fails_the_report_and_is_listed() -> None:
    label = "hot_read 500 at +12.00 s (worker 101, took 0.010 s): boom"
    figures = dataclasses.replace(FIGURES, non_session_5xx=[label])
    report = format_report(PARAMS, figures, RSS)
    assert "**Result: FAIL**" in report
    assert f"  - {label}" in report


def test_session_5xx_outside_the_restart_window_fails_the_report() -> None:
    figures = dataclasses.replace(FIGURES, session_5xx_outside_window=["cart 503 at +5.00 s"])
    assert "| session-route 5xx only inside the restart window | **NO** |" in format_report(
        PARAMS, figures, RSS
    )


@pytest.mark.parametrize(
    ("lost", "unverified", "figure"),
    [(1, 0, "1 of 400"), (0, 5, "0 of 400 (5 unverified)")],
)
def test_session_writes_after_the_restart_must_all_be_verified(
    lost: int, unverified: int, figure: str
) -> None:
    sessions = dataclasses.replace(SESSIONS, lost_after_restart=lost, unverified=unverified)
    figures = dataclasses.replace(FIGURES, sessions=sessions)
    report = format_report(PARAMS, figures, RSS)
    assert f"| no session write acknowledged after the restart is lost | **NO** | {figure} |" in (
        report
    )


def test_writes_lost_in_the_restart_do_not_fail_the_report() -> None:
    report = format_report(PARAMS, FIGURES, RSS)
    assert "| 1000 | 600 (3) | 400 | 400 | 600 | 0 | 0 | 0 |" in report
    assert "**Result: PASS**" in report


def test_overshoot_outside_the_restart_fails_the_report() -> None:
    limits = [dataclasses.replace(LIMITS[0], overshoot_outside_restart=2)]
    report = format_report(PARAMS, dataclasses.replace(FIGURES, limits=limits), RSS)
    assert "| search limit: no overshoot outside the restart | **NO** | 2 |" in report


def test_limit_row_gives_admissions_rejections_and_decision_precision() -> None:
    report = format_report(PARAMS, FIGURES, RSS)
    assert "| search | 20/2s | open | 500 | 40; 0 | 900 | 0 | 0 | 0 | 2.1 ms |" in report


def test_workers_row_gives_invalidation_failures_and_loop_stalls() -> None:
    report = format_report(PARAMS, FIGURES, RSS)
    assert "| 101 | 6000 | 3 | 1 | 270 ms | +7.59 s (270 ms) |" in report


def test_rss_is_reported_per_worker_in_mib() -> None:
    report = format_report(PARAMS, FIGURES, RSS)
    assert "| 101 | 58.6 MiB | 60.6 MiB | +2.0 MiB |" in report


def test_rss_growth_over_the_bound_fails_the_report() -> None:
    rss = RssFigures(start={101: 60_000}, end={101: 60_000 + 65 * 1024})
    assert "**Result: FAIL**" in format_report(PARAMS, FIGURES, rss)


def test_a_worker_gone_at_the_end_fails_the_memory_promise() -> None:
    rss = RssFigures(start={101: 60_000, 102: 61_000}, end={101: 60_000})
    report = format_report(PARAMS, FIGURES, rss)
    assert "| 102 | 59.6 MiB | gone | ? |" in report
    assert "**Result: FAIL**" in report


# -- Cluster wording and merging the two runs' parts of SOAK.md ------------------------------

FAILOVER = FailoverRecord(killed_port=7001, slots="0-5460", promoted_port=7004, rejoined_after=36.2)
CLUSTER_PARAMS = dataclasses.replace(PARAMS, topology="cluster", failover=FAILOVER)
STANDALONE = format_report(PARAMS, FIGURES, RSS)
CLUSTER = format_report(CLUSTER_PARAMS, FIGURES, RSS)


def test_cluster_report_is_a_section_below_the_marker() -> None:
    lines = CLUSTER.splitlines()
    assert lines[0] == CLUSTER_MARKER
    assert "## Cluster soak" in lines
    assert "### Parameters" in lines
    assert "## Parameters" not in lines
    assert "# Soak" not in lines
    assert CLUSTER_MARKER not in STANDALONE


def test_cluster_report_describes_the_failover_not_a_restart() -> None:
    assert (
        "- failover: the primary on port 7001 (slots 0-5460) killed (SIGKILL) at +29.00 s; "
        "its replica (port 7004) promoted and the cluster ok at +31.10 s; the killed node "
        "started again 2 s later and a replica at +36.20 s; window for session 5xx: "
        "+29.00 s to +34.10 s"
    ) in CLUSTER
    assert "- restart: Valkey stopped" not in CLUSTER


@pytest.mark.parametrize(
    "cluster_wording",
    [
        "Sessions live on in the promoted replica",
        "fail closed while their slots have no primary",
        "a third of the counters moved to the promoted replica",
        "lives on in the promoted replica while the update's invalidation failed",
    ],
)
def test_cluster_report_explains_what_a_failover_means(cluster_wording: str) -> None:
    assert cluster_wording in CLUSTER
    assert cluster_wording not in STANDALONE


# Two tests, not one parametrised by topology: ids naming a topology would count in the
# suite's "real Valkey servers" summary, and these use none.
def test_standalone_report_merged_into_an_empty_file_is_the_file() -> None:
    assert merge_report("", STANDALONE) == STANDALONE


def test_cluster_report_merged_into_an_empty_file_is_the_file() -> None:
    assert merge_report("", CLUSTER) == CLUSTER


def test_cluster_report_goes_below_a_file_with_only_the_standalone_section() -> None:
    merged = merge_report(STANDALONE, CLUSTER)
    assert merged.startswith(STANDALONE)
    assert merged[len(STANDALONE) :] == "\n" + CLUSTER  # one blank line between the parts


def test_cluster_report_replaces_the_old_cluster_section_and_keeps_standalone_bytes() -> None:
    old = format_report(
        dataclasses.replace(CLUSTER_PARAMS, date="2026-11-01 09:00 UTC"), FIGURES, RSS
    )
    merged = merge_report(merge_report(STANDALONE, old), CLUSTER)
    standalone_part, marker, cluster_part = merged.partition(CLUSTER_MARKER)
    assert standalone_part == STANDALONE + "\n"
    assert marker + cluster_part == CLUSTER
    assert merged.count(CLUSTER_MARKER) == 1
    assert "2026-11-01 09:00 UTC" not in merged


def test_standalone_report_replaces_its_section_and_keeps_the_cluster_section() -> None:
    old = format_report(dataclasses.replace(PARAMS, date="2026-11-01 09:00 UTC"), FIGURES, RSS)
    merged = merge_report(merge_report(old, CLUSTER), STANDALONE)
    assert merged.startswith(STANDALONE)
    assert merged.endswith(CLUSTER)
    assert "2026-11-01 09:00 UTC" not in merged


def test_merging_the_same_report_again_changes_nothing() -> None:
    both = merge_report(STANDALONE, CLUSTER)
    assert merge_report(both, CLUSTER) == both
    assert merge_report(both, STANDALONE) == both


def _admissions(intervals: list[tuple[float, float]], *, checked: bool = True) -> list[Admission]:
    return [Admission(identity="ip", earliest=a, latest=b, checked=checked) for a, b in intervals]


@pytest.mark.parametrize(
    ("intervals", "checked", "overshoot"),
    [
        # three decisions certainly inside one 1 s window: one over a limit of 2
        ([(0.0, 0.01), (0.5, 0.51), (0.9, 0.91)], True, 1),
        # the third may have been decided after the first left the window: no proof
        ([(0.0, 0.01), (0.5, 0.51), (0.9, 1.2)], True, 0),
        # spread over more than a window
        ([(0.0, 0.01), (0.6, 0.61), (1.2, 1.21)], True, 0),
        # fail-open admissions are not counted against the limit
        ([(0.0, 0.01), (0.5, 0.51), (0.9, 0.91)], False, 0),
    ],
)
def test_certain_overshoot_counts_only_decisions_proven_inside_one_window(
    intervals: list[tuple[float, float]], checked: bool, overshoot: int
) -> None:
    admissions = _admissions(intervals, checked=checked)
    assert certain_overshoot(admissions, limit=2, window=1.0) == overshoot


def _record(samples: list[Sample], writes: list[CartWrite], cart: frozenset[str]) -> SoakRecord:
    # Load from t=1000 s; Valkey away from +30 s to +32 s.
    timeline = Timeline(
        load_started=1000.0, valkey_stopped=1030.0, valkey_started=1032.0, load_ended=1060.0
    )
    return SoakRecord(
        samples=samples, cart_writes=writes, carts_found={"u": cart}, timeline=timeline
    )


def _analyse(record: SoakRecord) -> SoakFigures:
    return analyse(record, breaker_grace=3.0, search_limit=(20, 2.0), login_limit=(4, 2.0))


@pytest.mark.parametrize(
    ("kind", "ended", "inside", "outside", "non_session"),
    [
        ("cart", 1031.0, 1, 0, 0),  # Valkey away: fail closed, by design
        ("cart", 1034.5, 1, 0, 0),  # within the breaker's grace after the restart
        ("cart", 1040.0, 0, 1, 0),  # long after: a failure
        ("hot_read", 1031.0, 0, 0, 1),  # never allowed on a non-session route
    ],
)
def test_5xx_are_classified_by_route_and_restart_window(
    kind: str, ended: float, inside: int, outside: int, non_session: int
) -> None:
    sample = Sample(kind=kind, started=ended - 0.01, ended=ended, status=503, worker=1)
    figures = _analyse(_record([sample], [], frozenset()))
    assert figures.session_5xx_inside_window == inside
    assert len(figures.session_5xx_outside_window) == outside
    assert len(figures.non_session_5xx) == non_session


@pytest.mark.parametrize(
    ("acknowledged_at", "lost_in_restart", "lost_after_restart"),
    [(1010.0, 1, 0), (1030.05, 1, 0), (1040.0, 0, 1)],
)
def test_missing_cart_write_is_lost_in_or_after_the_restart_by_acknowledgement_time(
    acknowledged_at: float, lost_in_restart: int, lost_after_restart: int
) -> None:
    write = CartWrite(user="u", sku="s1", acknowledged_at=acknowledged_at)
    sessions = _analyse(_record([], [write], frozenset({"other"}))).sessions
    assert (sessions.lost_in_restart, sessions.lost_after_restart) == (
        lost_in_restart,
        lost_after_restart,
    )


@pytest.mark.parametrize(("invalidated", "after_failed", "other"), [(False, 1, 0), (True, 0, 1)])
def test_stale_read_is_attributed_to_a_failed_invalidation_only_when_it_failed(
    invalidated: bool, after_failed: int, other: int
) -> None:
    record = _record([], [], frozenset())
    record.updates = [
        Update(product_id=1, version=2, acknowledged_at=1040.0, invalidated=invalidated)
    ]
    record.reads = [ProductRead(product_id=1, version=1, started=1041.0)]
    figures = _analyse(record)
    assert (figures.stale_reads_after_failed_invalidation, figures.stale_reads_other) == (
        after_failed,
        other,
    )
