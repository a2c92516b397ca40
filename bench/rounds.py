"""Measured rounds over running apps: steady load, or one stampede burst, per app per round."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TypeVar

from bench.apps import RunningApp, cpu_seconds
from bench.burst import origin_calls, run_burst
from bench.load import LoadSpec, build_request, run_load
from bench.report import BurstMeasurement, Measurement
from bench.settings import WORK_DIR, BenchSettings
from bench.valkey_stats import ValkeyStats, commands_between
from cachemw.valkey.embedded import LOOPBACK

T = TypeVar("T")


@dataclass(slots=True)
class RoundResults:
    steady: list[Measurement] = field(default_factory=list)
    bursts: list[BurstMeasurement] = field(default_factory=list)


def load_spec(app: RunningApp, settings: BenchSettings, duration: float, token: str) -> LoadSpec:
    scenario = app.scenario
    return LoadSpec(
        host=LOOPBACK,
        port=app.port,
        path=scenario.path_for(token),
        method=scenario.method,
        headers=app.request_headers(),
        body=scenario.body,
        duration=duration,
        connections=settings.connections,
        threads=settings.threads,
    )


def measure(
    app: RunningApp,
    *,
    round_index: int,
    slot: int,
    stats: ValkeyStats,
    settings: BenchSettings,
    generator: str,
) -> Measurement:
    """Steady load for ``settings.duration``; app CPU and Valkey counters around it."""
    spec = load_spec(app, settings, settings.duration, token="load")
    before = stats.snapshot()
    cpu_before = cpu_seconds(app.pid)
    result = run_load(spec, generator=generator, work_dir=WORK_DIR)
    cpu_after = cpu_seconds(app.pid)
    after = stats.snapshot()
    return Measurement(
        scenario=app.scenario.name,
        round=round_index,
        slot=slot,
        requests=result.requests,
        seconds=result.seconds,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors,
        app_cpu_seconds=cpu_after - cpu_before,
        valkey_commands=commands_between(before, after),
        valkey_cpu_seconds=max(0.0, after.cpu_seconds - before.cpu_seconds),
    )


def measure_burst(app: RunningApp, *, round_index: int) -> BurstMeasurement:
    """One burst of simultaneous requests for a key no earlier round or run has used."""
    scenario = app.scenario
    assert scenario.origin_calls_path is not None  # Scenario validates burst scenarios
    token = f"cold-{round_index}-{time.time_ns()}"
    spec = LoadSpec(
        host=LOOPBACK,
        port=app.port,
        path=scenario.path_for(token),
        method=scenario.method,
        headers=app.request_headers(),
        body=scenario.body,
    )
    calls_before = origin_calls(LOOPBACK, app.port, scenario.origin_calls_path)
    result = run_burst(
        host=LOOPBACK, port=app.port, request=build_request(spec), size=scenario.burst
    )
    calls_after = origin_calls(LOOPBACK, app.port, scenario.origin_calls_path)
    return BurstMeasurement(
        scenario=scenario.name,
        round=round_index,
        requests=result.requests,
        errors=result.errors,
        origin_calls=calls_after - calls_before,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
    )


def rotated(items: list[T], by: int) -> list[T]:
    """The same items starting at a different one each round (no scenario always goes first)."""
    if not items:
        return items
    shift = by % len(items)
    return items[shift:] + items[:shift]


def _measure_one(
    app: RunningApp,
    round_index: int,
    slot: int,
    results: RoundResults,
    *,
    stats: ValkeyStats,
    settings: BenchSettings,
    generator: str,
) -> str:
    """Measure, record, and return the progress line to print."""
    if app.scenario.burst:
        burst = measure_burst(app, round_index=round_index)
        results.bursts.append(burst)
        return (
            f"{burst.requests} at once, {burst.origin_calls} origin call(s), "
            f"p99 {burst.p99_ms:6.1f} ms  errors {burst.errors}"
        )
    steady = measure(
        app, round_index=round_index, slot=slot, stats=stats, settings=settings, generator=generator
    )
    results.steady.append(steady)
    return (
        f"{steady.rps:>9,.0f} req/s  p99 {steady.p99_ms:6.2f} ms  "
        f"{steady.commands_per_request:5.2f} cmds/req  errors {steady.errors}"
    )


# The baseline runs again after this many scenario runs, so that every ratio compares runs
# at most ~25 s apart (5 s runs): a round of every scenario takes minutes.
BASELINE_EVERY = 4


def schedule(names: list[str], rounds: int, *, baseline: str) -> list[tuple[int, str]]:
    """(round, scenario) in measuring order: each round's other scenarios rotated, the
    baseline before every `BASELINE_EVERY` of them and once more at the very end."""
    others = [name for name in names if name != baseline]
    if baseline not in names:
        return [(r, name) for r in range(rounds) for name in rotated(others, r)]
    order: list[tuple[int, str]] = []
    for round_index in range(rounds):
        rotation = rotated(others, round_index)
        for start in range(0, len(rotation), BASELINE_EVERY):
            order.append((round_index, baseline))
            order.extend((round_index, name) for name in rotation[start : start + BASELINE_EVERY])
        if not rotation:
            order.append((round_index, baseline))
    if rounds and others:
        order.append((rounds - 1, baseline))
    return order


def run_rounds(
    apps: list[RunningApp],
    *,
    stats: ValkeyStats,
    settings: BenchSettings,
    generator: str,
    skipped: dict[str, str],
    baseline: str,
) -> RoundResults:
    """``settings.rounds`` rounds over every app, interleaved, the baseline bracketing every
    few runs; failures mark an app skipped."""
    results = RoundResults()
    by_name = {app.scenario.name: app for app in apps}
    order = schedule(list(by_name), settings.rounds, baseline=baseline)
    for slot, (round_index, name) in enumerate(order):
        app = by_name[name]
        if name in skipped:
            continue
        if app.process.poll() is not None:
            skipped[name] = f"app exited with {app.process.returncode}: {app.last_log_line()}"
            continue
        try:
            progress = _measure_one(
                app, round_index, slot, results, stats=stats, settings=settings, generator=generator
            )
        except (RuntimeError, ValueError, OSError, TimeoutError) as exc:
            skipped[name] = f"measurement failed: {exc!r}"[:200]
            continue
        print(
            f"bench: round {round_index + 1}/{settings.rounds} {name:<28} {progress}",
            flush=True,
        )
    return results
