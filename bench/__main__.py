"""``python -m bench [--quick] [--only NAME,...]`` — see ``bench/registry.py`` for scenarios."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from bench.driver import run
from bench.registry import SCENARIOS
from bench.settings import BenchSettings


def parse_args(argv: list[str]) -> BenchSettings:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark cachemw scenarios and peers; ratios to plain FastAPI.",
    )
    parser.add_argument("--quick", action="store_true", help="one short round of the quick subset")
    parser.add_argument(
        "--only",
        default="",
        metavar="NAME,...",
        help="only these scenarios (the baseline always runs); known: "
        + ", ".join(s.name for s in SCENARIOS),
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per run (default 5; quick 2)")
    parser.add_argument(
        "--warmup", type=float, help="seconds of concurrent warm-up (default 1; quick 0.5)"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1 or 2)")
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--no-install-peers",
        action="store_true",
        help="do not pip-install bench/requirements-peers.txt (missing peers are skipped)",
    )
    parser.add_argument("--output", type=Path, help="where to write the Markdown results")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    return BenchSettings(
        quick=quick,
        only=tuple(name.strip() for name in args.only.split(",") if name.strip()),
        rounds=args.rounds if args.rounds is not None else (1 if quick else 3),
        duration=args.duration if args.duration is not None else (2.0 if quick else 5.0),
        warmup_seconds=args.warmup if args.warmup is not None else (0.5 if quick else 1.0),
        connections=args.connections,
        threads=args.threads,
        generator=args.load,
        install_peers=not args.no_install_peers,
        output=args.output,
    )


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through the driver's finally blocks: apps and Valkey are stopped.
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        settings = parse_args(argv)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    try:
        return run(settings)
    except KeyError as exc:  # an unknown --only name
        print(f"bench: {exc.args[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
