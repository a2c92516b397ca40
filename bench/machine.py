"""What the results were measured on: date, CPU, versions, load settings."""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench.peers import requirement_lines

if TYPE_CHECKING:
    from bench.settings import BenchSettings
    from bench.valkey_stats import ValkeyStats

CORE_PACKAGES = ("cachemw", "uvicorn", "fastapi", "starlette", "redis", "hiredis", "msgspec")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_versions(names: list[str] | tuple[str, ...]) -> str:
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def uvicorn_stack() -> str:
    """Which event loop and HTTP parser uvicorn's 'auto' picks in this venv."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"loop {loop}, http {http}, 1 worker, --no-access-log"


def wrk_version() -> str:
    if shutil.which("wrk") is None:
        return "absent"
    completed = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    first = (completed.stdout + completed.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk"


def describe(
    *,
    stats: ValkeyStats,
    settings: BenchSettings,
    generator: str,
    wall_seconds: float,
    load_average: float,
) -> list[tuple[str, str]]:
    peers = [line.split("==")[0].split(">")[0].split("[")[0] for line in requirement_lines()]
    load = (
        f"{wrk_version()}, {settings.threads} thread(s)"
        if generator == "wrk"
        else "bench.pyload (asyncio, raw sockets)"
    )
    return [
        ("date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", f"{cpu_model()}, {os.cpu_count()} logical cores"),
        ("load average at start", f"{load_average:.2f} (other work on the machine adds noise)"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {sys.version.split()[0]}"),
        ("server", uvicorn_stack()),
        ("Valkey", f"{stats.server_version()} on loopback"),
        ("load", f"{load}, {settings.connections} connections, keep-alive, loopback"),
        (
            "rounds",
            f"{settings.rounds} interleaved round(s) of {settings.duration:g}s per scenario "
            f"(order rotated each round), after {settings.warmup_seconds:g}s warm-up",
        ),
        ("packages", package_versions(CORE_PACKAGES)),
        ("peers", package_versions(peers)),
        ("wall time", f"{wall_seconds:.0f}s"),
    ]
