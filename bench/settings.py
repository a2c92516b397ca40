"""How a bench run is shaped: rounds, durations, concurrency, load generator, output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"


@dataclass(frozen=True, kw_only=True, slots=True)
class BenchSettings:
    quick: bool = False
    only: tuple[str, ...] = ()
    rounds: int = 3
    duration: float = 5.0
    warmup_seconds: float = 1.0
    connections: int = 32
    threads: int = 1
    generator: str = "auto"  # "auto" (wrk if present), "wrk" or "python"
    install_peers: bool = True
    output: Path | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.rounds <= 20:
            raise ValueError(f"rounds must be in 1..20, got {self.rounds}")
        if not 1.0 <= self.duration <= 60.0:
            raise ValueError(f"duration must be in 1..60 seconds, got {self.duration}")
        if not 0.0 <= self.warmup_seconds <= 30.0:
            raise ValueError(f"warmup_seconds must be in 0..30, got {self.warmup_seconds}")
        if not 1 <= self.connections <= 1024:
            raise ValueError(f"connections must be in 1..1024, got {self.connections}")
        if not 1 <= self.threads <= 2:
            raise ValueError(f"threads must be 1 or 2 (2 cores: app + load), got {self.threads}")
        if self.generator not in {"auto", "wrk", "python"}:
            raise ValueError(f"generator must be auto, wrk or python, got {self.generator!r}")

    def results_path(self) -> Path:
        if self.output is not None:
            return self.output
        if self.only:
            return WORK_DIR / "RESULTS-partial.md"
        return WORK_DIR / "RESULTS-quick.md" if self.quick else BENCH_DIR / "RESULTS.md"
