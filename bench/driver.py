"""The bench run: one Valkey, every selected app under uvicorn, interleaved measured rounds.

Flow: install/import peers, start Valkey (embedded, or ``VALKEY_URL``), start each app, log
in (``setup_path``), warm up (sequential requests + one short concurrent burst) and probe it,
then ``rounds`` rounds over every app (order rotated each round), then medians and ratios,
printed and written to RESULTS.md.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from redis.exceptions import RedisError

from bench import machine
from bench.apps import (
    AppFailed,
    RunningApp,
    log_findings,
    prepare_app,
    probe_app,
    start_app,
    stop_app,
)
from bench.census import app_commands_per_request
from bench.load import run_load, wrk_available
from bench.peers import ensure_peers
from bench.registry import BASELINE, Scenario, select
from bench.report import (
    BurstRow,
    Row,
    format_burst_table,
    format_descriptions,
    format_notes,
    format_table,
    results_markdown,
    summarise_burst,
    summarise_scenario,
)
from bench.rounds import RoundResults, load_spec, run_rounds
from bench.scenarios._common import SLOW_ORIGIN_SECONDS
from bench.settings import BENCH_DIR, WORK_DIR, BenchSettings
from bench.valkey_stats import ValkeyStats
from cachemw.valkey.embedded import EmbeddedValkey

_REDIS_SCHEMES = {"valkey://": "redis://", "valkeys://": "rediss://"}
# Hand-written: what profiling found and what each change bought; copied into RESULTS.md.
PROFILING_NOTES = BENCH_DIR / "PROFILING.md"


def resolve_generator(requested: str) -> str:
    if requested == "auto":
        return "wrk" if wrk_available() else "python"
    if requested == "wrk" and not wrk_available():
        raise RuntimeError("--load wrk asked for, but wrk is not on PATH (bench/ensure_wrk.sh)")
    return requested


def redis_scheme(url: str) -> str:
    """The same URL with cachemw's ``valkey://`` aliases spelled as redis-py (and peers) know
    them; otherwise ``limits`` would pick its own valkey-py client for ``valkey://``."""
    for alias, scheme in _REDIS_SCHEMES.items():
        if url.startswith(alias):
            return scheme + url[len(alias) :]
    return url


@contextlib.contextmanager
def valkey_server() -> Iterator[str]:
    """``VALKEY_URL`` if set (never flushed), else an embedded server of our own."""
    external = os.environ.get("VALKEY_URL")
    if external:
        yield redis_scheme(external)
        return
    with EmbeddedValkey() as server:
        yield server.url


def launch(
    scenario: Scenario,
    *,
    valkey_url: str,
    settings: BenchSettings,
    generator: str,
    stats: ValkeyStats,
    census: dict[str, float | None],
) -> RunningApp:
    """Start, log in, warm up, probe and census one app; AppFailed says why it cannot be
    measured."""
    app = start_app(scenario, valkey_url=valkey_url, log_dir=WORK_DIR / "logs")
    try:
        prepare_app(app)
        if settings.warmup_seconds > 0 and not scenario.burst:
            duration = max(1.0, settings.warmup_seconds)
            spec = load_spec(app, settings, duration, token="warmup")
            run_load(spec, generator=generator, work_dir=WORK_DIR)
        probe_app(app)
        if scenario.needs_valkey and not scenario.burst:
            census[scenario.name] = app_commands_per_request(app, stats)
    except (AppFailed, RuntimeError, ValueError, OSError, RedisError) as exc:
        stop_app(app)
        raise AppFailed(str(exc)) from exc
    return app


def launch_all(
    scenarios: tuple[Scenario, ...],
    *,
    valkey_url: str,
    settings: BenchSettings,
    generator: str,
    stats: ValkeyStats,
    skipped: dict[str, str],
    census: dict[str, float | None],
    apps: list[RunningApp],
) -> None:
    """Launch every scenario not already skipped into ``apps``; failures become skips."""
    for scenario in scenarios:
        if scenario.name in skipped:
            continue
        try:
            app = launch(
                scenario,
                valkey_url=valkey_url,
                settings=settings,
                generator=generator,
                stats=stats,
                census=census,
            )
            apps.append(app)
        except AppFailed as exc:
            skipped[scenario.name] = str(exc).replace("\n", " ")[:200]
            log = (WORK_DIR / "logs" / f"{scenario.name}.log").relative_to(BENCH_DIR.parent)
            print(f"bench: {scenario.name} skipped: {skipped[scenario.name]} (log: {log})")


def build_rows(
    scenarios: tuple[Scenario, ...],
    results: RoundResults,
    skipped: dict[str, str],
    census: dict[str, float | None],
) -> tuple[list[Row], list[BurstRow]]:
    baselines = [m for m in results.steady if m.scenario == BASELINE]
    rows: list[Row] = []
    burst_rows: list[BurstRow] = []
    for scenario in scenarios:
        name, description = scenario.name, scenario.description
        reason = skipped.get(name)
        if scenario.burst:
            burst_rows.append(
                BurstRow(name=name, description=description, skipped=reason)
                if reason
                else summarise_burst(
                    name,
                    description,
                    [m for m in results.bursts if m.scenario == name],
                    origin_ms=SLOW_ORIGIN_SECONDS * 1000.0,
                )
            )
        elif reason:
            rows.append(Row(name=name, description=description, skipped=reason))
        else:
            measured = [m for m in results.steady if m.scenario == name]
            rows.append(
                summarise_scenario(
                    name,
                    description,
                    measured,
                    baselines,
                    app_commands=census.get(name),
                    design_commands=scenario.design_commands,
                )
            )
    return rows, burst_rows


def run(settings: BenchSettings) -> int:
    """Run the bench; print the table and write it; 0 on success, 1 if the baseline failed."""
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    scenarios = select(quick=settings.quick, only=settings.only)
    generator = resolve_generator(settings.generator)
    skipped = ensure_peers(
        [s for s in scenarios if s.requires], work_dir=WORK_DIR, install=settings.install_peers
    )
    print(
        f"bench: {len(scenarios)} scenarios, {settings.rounds} round(s) of "
        f"{settings.duration:g}s, load by {generator}",
        flush=True,
    )
    apps: list[RunningApp] = []
    census: dict[str, float | None] = {}
    with valkey_server() as valkey_url, ValkeyStats(valkey_url) as stats:
        try:
            launch_all(
                scenarios,
                valkey_url=valkey_url,
                settings=settings,
                generator=generator,
                stats=stats,
                skipped=skipped,
                census=census,
                apps=apps,
            )
            results = run_rounds(
                apps,
                stats=stats,
                settings=settings,
                generator=generator,
                skipped=skipped,
                baseline=BASELINE,
            )
            about = machine.describe(
                stats=stats,
                settings=settings,
                generator=generator,
                wall_seconds=time.monotonic() - started,
                load_average=load_before,
            )
        finally:
            for app in apps:
                stop_app(app)
    rows, burst_rows = build_rows(scenarios, results, skipped, census)
    table = format_table(rows)
    if burst_rows:
        table += "\n\n" + format_burst_table(burst_rows)
    logged = {app.scenario.name: finding for app in apps if (finding := log_findings(app))}
    notes = format_notes([*rows, *burst_rows], logged=logged)
    print(table + ("\n\n" + notes if notes else ""), flush=True)
    output = settings.results_path()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        results_markdown(
            title="cachemw benchmark results" + (" (quick)" if settings.quick else ""),
            table=table,
            notes=notes,
            descriptions=format_descriptions([*rows, *burst_rows]),
            machine=about,
            profiling=PROFILING_NOTES.read_text() if PROFILING_NOTES.exists() else "",
        )
    )
    print(f"bench: wrote {output} in {time.monotonic() - started:.0f}s", flush=True)
    return 1 if BASELINE in skipped else 0
