"""Turn per-round measurements into one table of medians and ratios to the baseline.

Ratios are taken run by run: each scenario run against the baseline runs just before and just
after it (at most a few runs away, so both saw the same machine), and the median of those
ratios is reported. A round of every scenario takes minutes, and the shared machine's speed
drifts within that time: one baseline per round put that drift into every ratio.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class Measurement:
    """One scenario, one round."""

    scenario: str
    round: int
    slot: int = 0  # position in the whole run's order of measurements
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    app_cpu_seconds: float
    valkey_commands: int
    valkey_cpu_seconds: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def app_cpu_us_per_request(self) -> float:
        return self.app_cpu_seconds * 1e6 / self.requests if self.requests else 0.0

    @property
    def commands_per_request(self) -> float:
        return self.valkey_commands / self.requests if self.requests else 0.0

    @property
    def valkey_cpu_us_per_request(self) -> float:
        return self.valkey_cpu_seconds * 1e6 / self.requests if self.requests else 0.0


# Background traffic (health checks, another app's timers) adds a few commands per run.
DESIGN_TOLERANCE = 0.05


@dataclass(frozen=True, kw_only=True, slots=True)
class Row:
    """One line of the results table: medians over rounds, or why the scenario was skipped."""

    name: str
    description: str
    rounds: int = 0
    rps: float = 0.0
    ratio: float = 0.0
    spread: float = 0.0  # (max - min) / median of the scenario's req/s over rounds
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_us: float = 0.0
    cpu_ratio: float = 0.0
    commands: float = 0.0
    valkey_cpu_us: float = 0.0
    errors: int = 0
    app_commands: float | None = None  # census: commands the app sends per request
    design_commands: float | None = None
    skipped: str | None = None

    @property
    def off_design(self) -> bool:
        """The app sends another number of Valkey commands per request than designed."""
        if self.design_commands is None or self.skipped is not None:
            return False
        measured = self.commands if self.app_commands is None else self.app_commands
        return abs(measured - self.design_commands) > DESIGN_TOLERANCE


def ratio(value: float, baseline: float) -> float:
    """value / baseline, 0.0 when there is no baseline to compare with."""
    return value / baseline if baseline > 0 else 0.0


def _median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else 0.0


def bracketing_baseline(
    measurement: Measurement, baselines: Sequence[Measurement]
) -> tuple[float, float] | None:
    """(req/s, CPU µs per request) of the baseline around ``measurement``: the mean of the
    baseline runs just before and just after it, or the one on its only side."""
    if baselines and measurement.scenario == baselines[0].scenario:
        return measurement.rps, measurement.app_cpu_us_per_request  # the baseline row
    before = [b for b in baselines if b.slot < measurement.slot]
    after = [b for b in baselines if b.slot > measurement.slot]
    around = [
        *([max(before, key=lambda b: b.slot)] if before else []),
        *([min(after, key=lambda b: b.slot)] if after else []),
    ]
    if not around:
        return None
    return (
        statistics.fmean(b.rps for b in around),
        statistics.fmean(b.app_cpu_us_per_request for b in around),
    )


def summarise_scenario(
    name: str,
    description: str,
    measured: Sequence[Measurement],
    baselines: Sequence[Measurement],
    *,
    app_commands: float | None = None,
    design_commands: float | None = None,
) -> Row:
    """Median of each metric over the rounds; ratios per run against the baseline around it."""
    if not measured:
        return Row(name=name, description=description, skipped="no measurement")
    rates = [m.rps for m in measured]
    median_rps = _median(rates)
    paired = [
        (m, base) for m in measured if (base := bracketing_baseline(m, baselines)) is not None
    ]
    return Row(
        name=name,
        description=description,
        rounds=len(measured),
        rps=median_rps,
        ratio=_median(ratio(m.rps, base_rps) for m, (base_rps, _) in paired),
        spread=ratio(max(rates) - min(rates), median_rps),
        p50_ms=_median(m.p50_ms for m in measured),
        p99_ms=_median(m.p99_ms for m in measured),
        cpu_us=_median(m.app_cpu_us_per_request for m in measured),
        cpu_ratio=_median(ratio(m.app_cpu_us_per_request, base_cpu) for m, (_, base_cpu) in paired),
        commands=_median(m.commands_per_request for m in measured),
        valkey_cpu_us=_median(m.valkey_cpu_us_per_request for m in measured),
        errors=sum(m.errors for m in measured),
        app_commands=app_commands,
        design_commands=design_commands,
    )


HEADER = (
    "scenario",
    "req/s",
    "x base",
    "spread",
    "p50 ms",
    "p99 ms",
    "app CPU µs/req",
    "CPU x base",
    "app cmds/req",
    "server cmds/req",
    "Valkey CPU µs/req",
    "errors",
)


def format_cells(row: Row) -> tuple[str, ...]:
    if row.skipped is not None:
        return (row.name, "skipped", *("-" for _ in HEADER[2:]))
    return (
        row.name,
        f"{row.rps:,.0f}",
        f"{row.ratio:.2f}x",
        f"±{row.spread * 50:.0f}%",
        f"{row.p50_ms:.2f}",
        f"{row.p99_ms:.2f}",
        f"{row.cpu_us:.0f}",
        f"{row.cpu_ratio:.2f}x",
        ("n/a" if row.app_commands is None else f"{row.app_commands:.2f}")
        + (" !" if row.off_design else ""),
        f"{row.commands:.2f}",
        f"{row.valkey_cpu_us:.1f}",
        str(row.errors),
    )


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A Markdown table, columns padded so it also reads well on a terminal."""
    cells = [tuple(header), *(tuple(values) for values in body)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        padded = [
            value.ljust(width) if index == 0 else value.rjust(width)
            for index, (value, width) in enumerate(zip(values, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    separator = (
        "|"
        + "|".join(
            "-" * (width + 1) + (":" if index else "-") for index, width in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(cells[0]), separator, *(line(values) for values in cells[1:])])


def format_table(rows: Sequence[Row]) -> str:
    return markdown_table(HEADER, [format_cells(row) for row in rows])


@dataclass(frozen=True, kw_only=True, slots=True)
class BurstMeasurement:
    """One stampede: N simultaneous requests for one cold key."""

    scenario: str
    round: int
    requests: int
    errors: int
    origin_calls: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True, kw_only=True, slots=True)
class BurstRow:
    name: str
    description: str
    rounds: int = 0
    requests: int = 0
    origin_calls: int = 0  # the worst round: "exactly one" must hold every time
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    origin_ms: float = 0.0
    errors: int = 0
    skipped: str | None = None


def summarise_burst(
    name: str, description: str, measured: Sequence[BurstMeasurement], *, origin_ms: float
) -> BurstRow:
    if not measured:
        return BurstRow(name=name, description=description, skipped="no measurement")
    return BurstRow(
        name=name,
        description=description,
        rounds=len(measured),
        requests=max(m.requests for m in measured),
        origin_calls=max(m.origin_calls for m in measured),
        p50_ms=_median(m.p50_ms for m in measured),
        p99_ms=_median(m.p99_ms for m in measured),
        origin_ms=origin_ms,
        errors=sum(m.errors for m in measured),
    )


BURST_HEADER = (
    "stampede scenario",
    "requests",
    "origin calls (worst round)",
    "p50 ms",
    "p99 ms",
    "p99 / origin time",
    "errors",
)


def format_burst_table(rows: Sequence[BurstRow]) -> str:
    body = []
    for row in rows:
        if row.skipped is not None:
            body.append((row.name, "skipped", *("-" for _ in BURST_HEADER[2:])))
            continue
        body.append(
            (
                row.name,
                str(row.requests),
                str(row.origin_calls),
                f"{row.p50_ms:.1f}",
                f"{row.p99_ms:.1f}",
                f"{ratio(row.p99_ms, row.origin_ms):.1f}x",
                str(row.errors),
            )
        )
    return markdown_table(BURST_HEADER, body)


def format_notes(rows: Sequence[Row | BurstRow], *, logged: Mapping[str, str] | None = None) -> str:
    """Skipped scenarios, off-design command counts and what apps logged, one line each
    ("" when there is nothing to say)."""
    lines = [f"- `{row.name}` skipped: {row.skipped}" for row in rows if row.skipped]
    lines += [
        f"- `{row.name}`: {row.app_commands if row.app_commands is not None else row.commands:.2f}"
        f" Valkey commands per request (!), the design says {row.design_commands:g}"
        for row in rows
        if isinstance(row, Row) and row.off_design
    ]
    lines += [f"- `{name}` logged: {finding}" for name, finding in (logged or {}).items()]
    return "\n".join(lines)


def format_descriptions(rows: Sequence[Row | BurstRow]) -> str:
    return "\n".join(f"- `{row.name}`: {row.description}" for row in rows)


def results_markdown(
    *,
    title: str,
    table: str,
    notes: str,
    descriptions: str,
    machine: Sequence[tuple[str, str]],
    profiling: str = "",
) -> str:
    """RESULTS.md; ``profiling`` is the hand-written bench/PROFILING.md, kept with the
    figures it explains."""
    about = "\n".join(f"- {key}: {value}" for key, value in machine)
    notes_section = f"\n{notes}\n" if notes else ""
    profiling_section = f"\n{profiling.strip()}\n" if profiling.strip() else ""
    return f"""# {title}

Written by `python -m bench` (`make bench`); regenerate rather than edit.

{table}
{notes_section}
Columns: median over interleaved rounds. `x base` is the median of per-run throughput ratios
to `plain_json`, whose runs bracket every few scenario runs: each run is compared with the
mean of the baseline runs just before and after it (the machine is noisy and its speed drifts
within a round; compare ratios, not absolute numbers, across runs). `spread` is ±half the
(max - min) range of req/s over rounds. App CPU is the uvicorn process's utime+stime (from
`/proc`) per request; `CPU x base` compares it the same way. `app cmds/req`: commands the app
sent to Valkey per request, counted with MONITOR over 50 sequential requests outside the
timed runs (script-internal calls not counted; `!` marks a count that differs from the
design). `server cmds/req` and Valkey CPU: `INFO stats cpu` deltas over the timed runs,
divided by requests: every command Valkey ran, including calls inside Lua scripts, with
in-process coalescing under load counted as it happened. `errors` counts non-2xx/3xx
responses and socket errors. Stampede rows: each round sends all requests at once (one
connection each) for a key never used before; `origin calls` is the worst round (the design
says exactly 1); `p99 / origin time` compares the burst's p99 with the origin's 50 ms.

## Scenarios

{descriptions}

## Machine and settings

{about}
{profiling_section}"""
