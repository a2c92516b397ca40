"""Formats the soak's figures as bench/SOAK.md: the numbers, the verdicts and what they mean.

The file holds the standalone report first and the Cluster report (``--cluster``) after
:data:`CLUSTER_MARKER`; each run rewrites its own part and keeps the other's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bench.soak.analysis import SoakFigures
from bench.soak.topology import FailoverRecord, Topology

__all__ = [
    "CLUSTER_MARKER",
    "RssFigures",
    "RunParameters",
    "Verdict",
    "format_report",
    "merge_report",
    "verdicts",
]

RSS_GROWTH_BOUND_KIB = 64 * 1024  # per worker, over the run
CLUSTER_MARKER = "<!-- cluster soak: written by python -m bench.soak --cluster -->"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunParameters:
    date: str  # UTC, ISO 8601
    seconds: float
    workers: int
    users: Mapping[str, int]
    pause: float
    valkey_url: str
    app_url: str
    restart_pause: float
    search_limit: tuple[int, float]
    login_limit: tuple[int, float]
    machine: str
    valkey_timeout: float
    topology: Topology = "standalone"
    failover: FailoverRecord | None = None  # cluster only: which primary was killed


@dataclass(frozen=True, slots=True, kw_only=True)
class RssFigures:
    """VmRSS in KiB per worker PID: after warm-up and at the end of the load."""

    start: Mapping[int, int]
    end: Mapping[int, int]

    def growth(self, pid: int) -> int | None:
        if pid not in self.start or pid not in self.end:
            return None
        return self.end[pid] - self.start[pid]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    promise: str
    holds: bool
    figure: str


def verdicts(figures: SoakFigures, rss: RssFigures) -> list[Verdict]:
    sessions = figures.sessions
    growths = [rss.growth(pid) for pid in rss.start]
    known = [g for g in growths if g is not None]
    return [
        Verdict(
            promise="no 5xx on non-session routes",
            holds=not figures.non_session_5xx,
            figure=str(len(figures.non_session_5xx)),
        ),
        Verdict(
            promise="session-route 5xx only inside the restart window",
            holds=not figures.session_5xx_outside_window,
            figure=f"{figures.session_5xx_inside_window} inside, "
            f"{len(figures.session_5xx_outside_window)} outside",
        ),
        Verdict(
            promise="no session write acknowledged after the restart is lost",
            holds=sessions.lost_after_restart == 0 and sessions.unverified == 0,
            figure=f"{sessions.lost_after_restart} of {sessions.acknowledged_after_restart}"
            + (f" ({sessions.unverified} unverified)" if sessions.unverified else ""),
        ),
        *(
            Verdict(
                promise=f"{limit.rule} limit: no overshoot outside the restart",
                holds=limit.overshoot_outside_restart == 0,
                figure=str(limit.overshoot_outside_restart),
            )
            for limit in figures.limits
        ),
        Verdict(
            promise=f"worker RSS growth under {RSS_GROWTH_BOUND_KIB // 1024} MiB each",
            holds=len(known) == len(growths) and all(g < RSS_GROWTH_BOUND_KIB for g in known),
            figure=", ".join(f"{g / 1024:+.1f} MiB" for g in known) or "not measured",
        ),
    ]


def _table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _limit_text(limit: tuple[int, float]) -> str:
    return f"{limit[0]} per {limit[1]:g} s"


def merge_report(existing: str, report: str) -> str:
    """``report`` in place of its own part of ``existing`` (standalone: everything before
    :data:`CLUSTER_MARKER`; cluster: the marker and everything after it)."""
    standalone, marker, cluster = existing.partition(CLUSTER_MARKER)
    if report.startswith(CLUSTER_MARKER):
        return standalone.rstrip("\n") + "\n\n" + report if standalone.strip() else report
    return report + ("\n" + marker + cluster if marker else "")


def _disruption(params: RunParameters, figures: SoakFigures) -> str:
    restart = figures.restart
    window = f"+{restart.stopped:.2f} s to +{restart.closes:.2f} s"
    failover = params.failover
    if params.topology == "cluster" and failover is not None:
        return (
            f"- failover: the primary on port {failover.killed_port} (slots {failover.slots}) "
            f"killed (SIGKILL) at +{restart.stopped:.2f} s; its replica (port "
            f"{failover.promoted_port}) promoted and the cluster ok at +{restart.started:.2f} s; "
            f"the killed node started again {params.restart_pause:g} s later and a replica "
            f"at +{failover.rejoined_after:.2f} s; window for session 5xx: {window}"
        )
    return (
        f"- restart: Valkey stopped at +{restart.stopped:.2f} s, started again "
        f"{params.restart_pause:g} s later (answering at +{restart.started:.2f} s); "
        f"restart window for session 5xx: {window}"
    )


def _session_note(params: RunParameters) -> str:
    if params.topology == "cluster":
        return (
            "Sessions live on in the promoted replica: a write counts as lost in the failover "
            "only if the killed primary acknowledged it before it had replicated it "
            "(replication is asynchronous). Writes acknowledged after the failover must all "
            "be found."
        )
    return (
        "Valkey runs without persistence, so a session written before the restart is gone "
        "after it: its writes count as lost in the restart (expected), and the shopper logs "
        "in again on its next 401. Writes acknowledged after the restart must all be found."
    )


def _limits_note(params: RunParameters) -> str:
    wiped = (
        "a third of the counters moved to the promoted replica, minus what it had not yet "
        "replicated"
        if params.topology == "cluster"
        else "the counters are wiped with Valkey"
    )
    return (
        "Overshoot = the most checked admissions certainly decided inside one window, minus "
        "the limit (each decision is bounded by when the request entered the app and when "
        "the handler ran, or the client's send/receive times for login). Windows overlapping "
        f"the restart are reported apart: {wiped}. The 429/503 "
        "columns count every request of that kind (login includes the shoppers' logins)."
    )


def _fail_closed_note(params: RunParameters) -> str:
    if params.topology == "cluster":
        return (
            "by design: sessions and the login limit fail closed while their slots have no "
            "primary, and the client's one circuit breaker may open for every slot"
        )
    return "by design: sessions and the login limit fail closed while Valkey is away"


def _stale_cause(params: RunParameters) -> str:
    if params.topology == "cluster":
        return (
            "the cache fails open: an entry stored before the failover lives on in the "
            "promoted replica while the update's invalidation failed during it"
        )
    return (
        "the cache fails open: an entry stored by a worker whose Valkey client had recovered "
        "outlives an update made on a worker whose breaker was still open"
    )


def _title(params: RunParameters) -> list[str]:
    if params.topology == "cluster":
        return [
            CLUSTER_MARKER,
            "",
            "## Cluster soak",
            "",
            "Written by `make soak-cluster` (`python -m bench.soak --cluster`): the same load "
            "on a Valkey Cluster of three primaries with one replica each, one primary killed "
            'halfway; do not edit by hand. "Restart" below means that failover.',
        ]
    return ["# Soak", "", "Written by `make soak` (`python -m bench.soak`); do not edit by hand."]


def format_report(params: RunParameters, figures: SoakFigures, rss: RssFigures) -> str:
    checks = verdicts(figures, rss)
    sessions = figures.sessions
    rate = figures.requests / figures.seconds if figures.seconds > 0 else 0.0
    hit_ratio = figures.hot_read_hits / figures.hot_reads if figures.hot_reads else 0.0
    users = ", ".join(f"{count} {role}" for role, count in params.users.items())
    # The Cluster report is a section below the standalone one: one heading level down.
    sub = "###" if params.topology == "cluster" else "##"
    out = [
        *_title(params),
        "",
        f"**Result: {'PASS' if all(c.holds for c in checks) else 'FAIL'}** "
        f"({sum(c.holds for c in checks)} of {len(checks)} promises held)",
        "",
        f"{sub} Parameters",
        "",
        f"- date: {params.date}",
        f"- machine: {params.machine}",
        f"- load: {params.seconds:g} s; {users}; {params.pause * 1000:g} ms pause between "
        "one user's requests",
        f"- app: uvicorn `--workers {params.workers}` at {params.app_url}; "
        f"Valkey (no persistence) at {params.valkey_url}; Valkey command budget "
        f"{params.valkey_timeout * 1000:g} ms (sessions: their own 250 ms default)",
        _disruption(params, figures),
        f"- limits: search {_limit_text(params.search_limit)} for one client address "
        f"(fail-open); login {_limit_text(params.login_limit)} per username (fail-closed)",
        "",
        f"{sub} Promises",
        "",
        *_table(
            ("promise", "holds", "figure"),
            [(c.promise, "yes" if c.holds else "**NO**", c.figure) for c in checks],
        ),
        "",
        f"{sub} Requests",
        "",
        f"{figures.requests} requests in {figures.seconds:.1f} s ({rate:.0f}/s); "
        f"{figures.transport_errors} without an HTTP answer; hot reads served from the cache: "
        f"{figures.hot_read_hits} of {figures.hot_reads} ({hit_ratio:.1%}).",
        *(
            ["", *(f"- no answer: {label}" for label in figures.no_answer)]
            if figures.no_answer
            else []
        ),
        "",
        *_table(("request", "count"), list(figures.by_kind.items())),
        "",
        *_table(
            (
                "worker PID",
                "requests answered",
                "failed tag invalidations",
                "event-loop stalls > 100 ms",
                "longest",
                "longest five (when, how long)",
            ),
            [
                (
                    w.pid,
                    w.requests,
                    "?" if w.invalidation_errors < 0 else w.invalidation_errors,
                    w.loop_stalls,
                    f"{w.longest_stall * 1000:.0f} ms",
                    ", ".join(w.stall_moments) or "-",
                )
                for w in figures.workers
            ],
        ),
        "",
        *_table(("status", "count"), [(s or "no answer", n) for s, n in figures.statuses.items()]),
        "",
        f"{sub} 5xx",
        "",
        f"- non-session routes: {len(figures.non_session_5xx)}",
        *(f"  - {label}" for label in figures.non_session_5xx),
        f"- session routes inside the restart window: {figures.session_5xx_inside_window} "
        f"({_fail_closed_note(params)})",
        *(f"  - {cause}: {count}" for cause, count in figures.session_5xx_inside_by_cause.items()),
        f"- session routes outside it: {len(figures.session_5xx_outside_window)}",
        *(f"  - {label}" for label in figures.session_5xx_outside_window),
        "- last session-route 5xx: "
        + ("none" if figures.last_session_5xx is None else f"+{figures.last_session_5xx:.2f} s"),
        "",
        f"{sub} Session writes (cart fields)",
        "",
        *_table(
            (
                "acknowledged (2xx)",
                "before restart (of which while Valkey shut down)",
                "after restart",
                "found at the end",
                "lost in restart",
                "lost after restart",
                "sessions gone at the end",
                "unverified (cart unreadable)",
            ),
            [
                (
                    sessions.acknowledged,
                    f"{sessions.acknowledged_before_restart} "
                    f"({sessions.acknowledged_while_stopping})",
                    sessions.acknowledged_after_restart,
                    sessions.found,
                    sessions.lost_in_restart,
                    sessions.lost_after_restart,
                    sessions.sessions_gone_at_end,
                    sessions.unverified,
                )
            ],
        ),
        "",
        *(
            f"- lost after the restart: {example}"
            for example in sessions.lost_after_restart_examples
        ),
        "",
        _session_note(params),
        "",
        f"{sub} Rate limits",
        "",
        *_table(
            (
                "rule",
                "limit",
                "on error",
                "admitted (checked)",
                "admitted (fail-open; outside the restart window)",
                "429",
                "503",
                "overshoot outside restart",
                "overshoot around restart",
                "median decision interval",
            ),
            [
                (
                    lf.rule,
                    f"{lf.limit}/{lf.window:g}s",
                    lf.on_error,
                    lf.admitted_checked,
                    f"{lf.admitted_unchecked}; {lf.admitted_unchecked_outside_restart}",
                    lf.rejected_429,
                    lf.unavailable_503,
                    lf.overshoot_outside_restart,
                    lf.overshoot_around_restart,
                    f"{lf.median_decision_interval * 1000:.1f} ms",
                )
                for lf in figures.limits
            ],
        ),
        "",
        _limits_note(params),
        "",
        f"{sub} Cache",
        "",
        f"Reads that began after an update was acknowledged but returned an older version: "
        f"{figures.stale_reads_after_failed_invalidation} while every newer update's tag "
        f"invalidation had failed ({_stale_cause(params)}, for at most s-maxage = 30 s; the "
        "longest was "
        f"{figures.longest_stale_after_failed_invalidation:.1f} s after the update), "
        f"{figures.stale_reads_other} despite a successful invalidation of a newer version.",
        "",
        f"{sub} Memory (VmRSS of the workers)",
        "",
        *_table(
            ("worker PID", "after warm-up", "at the end", "growth"),
            [
                (
                    pid,
                    f"{rss.start[pid] / 1024:.1f} MiB",
                    f"{rss.end[pid] / 1024:.1f} MiB" if pid in rss.end else "gone",
                    "?" if (g := rss.growth(pid)) is None else f"{g / 1024:+.1f} MiB",
                )
                for pid in sorted(rss.start)
            ],
        ),
        "",
    ]
    return "\n".join(out)
