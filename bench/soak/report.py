"""Formats the soak's figures as bench/SOAK.md: the numbers, the verdicts and what they mean."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bench.soak.analysis import SoakFigures

__all__ = ["RssFigures", "RunParameters", "Verdict", "format_report", "verdicts"]

RSS_GROWTH_BOUND_KIB = 64 * 1024  # per worker, over the run


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


def format_report(params: RunParameters, figures: SoakFigures, rss: RssFigures) -> str:
    checks = verdicts(figures, rss)
    restart = figures.restart
    sessions = figures.sessions
    rate = figures.requests / figures.seconds if figures.seconds > 0 else 0.0
    hit_ratio = figures.hot_read_hits / figures.hot_reads if figures.hot_reads else 0.0
    users = ", ".join(f"{count} {role}" for role, count in params.users.items())
    out = [
        "# Soak",
        "",
        "Written by `make soak` (`python -m bench.soak`); do not edit by hand.",
        "",
        f"**Result: {'PASS' if all(c.holds for c in checks) else 'FAIL'}** "
        f"({sum(c.holds for c in checks)} of {len(checks)} promises held)",
        "",
        "## Parameters",
        "",
        f"- date: {params.date}",
        f"- machine: {params.machine}",
        f"- load: {params.seconds:g} s; {users}; {params.pause * 1000:g} ms pause between "
        "one user's requests",
        f"- app: uvicorn `--workers {params.workers}` at {params.app_url}; "
        f"Valkey (no persistence) at {params.valkey_url}; Valkey command budget "
        f"{params.valkey_timeout * 1000:g} ms (sessions: their own 250 ms default)",
        f"- restart: Valkey stopped at +{restart.stopped:.2f} s, started again "
        f"{params.restart_pause:g} s later (answering at +{restart.started:.2f} s); "
        f"restart window for session 5xx: +{restart.stopped:.2f} s to +{restart.closes:.2f} s",
        f"- limits: search {_limit_text(params.search_limit)} for one client address "
        f"(fail-open); login {_limit_text(params.login_limit)} per username (fail-closed)",
        "",
        "## Promises",
        "",
        *_table(
            ("promise", "holds", "figure"),
            [(c.promise, "yes" if c.holds else "**NO**", c.figure) for c in checks],
        ),
        "",
        "## Requests",
        "",
        f"{figures.requests} requests in {figures.seconds:.1f} s ({rate:.0f}/s); "
        f"{figures.transport_errors} without an HTTP answer; hot reads served from the cache: "
        f"{figures.hot_read_hits} of {figures.hot_reads} ({hit_ratio:.1%}).",
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
        "## 5xx",
        "",
        f"- non-session routes: {len(figures.non_session_5xx)}",
        *(f"  - {label}" for label in figures.non_session_5xx),
        f"- session routes inside the restart window: {figures.session_5xx_inside_window} "
        "(by design: sessions and the login limit fail closed while Valkey is away)",
        *(f"  - {cause}: {count}" for cause, count in figures.session_5xx_inside_by_cause.items()),
        f"- session routes outside it: {len(figures.session_5xx_outside_window)}",
        *(f"  - {label}" for label in figures.session_5xx_outside_window),
        "- last session-route 5xx: "
        + ("none" if figures.last_session_5xx is None else f"+{figures.last_session_5xx:.2f} s"),
        "",
        "## Session writes (cart fields)",
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
        "Valkey runs without persistence, so a session written before the restart is gone "
        "after it: its writes count as lost in the restart (expected), and the shopper logs "
        "in again on its next 401. Writes acknowledged after the restart must all be found.",
        "",
        "## Rate limits",
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
        "Overshoot = the most checked admissions certainly decided inside one window, minus "
        "the limit (each decision is bounded by when the request entered the app and when "
        "the handler ran, or the client's send/receive times for login). Windows overlapping "
        "the restart are reported apart: the counters are wiped with Valkey. The 429/503 "
        "columns count every request of that kind (login includes the shoppers' logins).",
        "",
        "## Cache",
        "",
        f"Reads that began after an update was acknowledged but returned an older version: "
        f"{figures.stale_reads_after_failed_invalidation} while every newer update's tag "
        "invalidation had failed (the cache fails open: an entry stored by a worker whose "
        "Valkey client had recovered outlives an update made on a worker whose breaker was "
        "still open, for at most s-maxage = 30 s), "
        f"{figures.stale_reads_other} despite a successful invalidation of a newer version.",
        "",
        "## Memory (VmRSS of the workers)",
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
