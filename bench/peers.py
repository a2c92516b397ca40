"""Install the peer packages (``bench/requirements-peers.txt``) into the current venv on first use.

Peers are bench-only, never runtime dependencies. Installs are constrained to the versions
already in the venv (``pip install -c``), so a peer can never up- or downgrade redis-py,
starlette or fastapi under cachemw; a peer that cannot be installed that way, or cannot be
imported, makes its scenarios "skipped" with the reason.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from bench.registry import Scenario

REQUIREMENTS = Path(__file__).resolve().parent / "requirements-peers.txt"
PIP_TIMEOUT_SECONDS = 300.0
# The project itself is installed editable; pinning it would make pip try to resolve it.
_NOT_CONSTRAINED = frozenset({"cachemw"})


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The import names that cannot be found in this interpreter."""
    importlib.invalidate_caches()
    return [name for name in modules if importlib.util.find_spec(name) is None]


def requirement_lines(path: Path = REQUIREMENTS) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def installed_constraints() -> str:
    """``name==version`` for every distribution in the venv: what a peer may not change."""
    pins = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in _NOT_CONSTRAINED:
            pins[name.lower()] = f"{name}=={dist.version}"
    return "\n".join(sorted(pins.values())) + "\n"


def _pip_install(requirements: list[str], constraints: Path) -> tuple[bool, str]:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["-c", str(constraints), *requirements]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"pip install timed out after {PIP_TIMEOUT_SECONDS:.0f}s"
    errors = [
        line
        for line in completed.stderr.splitlines()
        if line.strip() and not line.startswith("WARNING: Location")
    ]
    return completed.returncode == 0, "\n".join(errors[-5:])


def ensure_peers(scenarios: Iterable[Scenario], *, work_dir: Path, install: bool) -> dict[str, str]:
    """Make the peers the scenarios need importable; return {scenario name: why skipped}."""
    scenarios = list(scenarios)
    needed = sorted({module for s in scenarios for module in s.requires})
    if install and missing_modules(needed):
        work_dir.mkdir(parents=True, exist_ok=True)
        constraints = work_dir / "peer-constraints.txt"
        constraints.write_text(installed_constraints())
        requirements = requirement_lines()
        print(f"bench: installing peers into {sys.prefix}: {', '.join(requirements)}", flush=True)
        ok, _ = _pip_install(requirements, constraints)
        if not ok:
            # One conflicting peer must not keep the others out: retry one by one.
            for requirement in requirements:
                ok, why = _pip_install([requirement], constraints)
                if not ok:
                    print(f"bench: could not install {requirement}: {why}", flush=True)
    skipped = {}
    for scenario in scenarios:
        absent = missing_modules(scenario.requires)
        if absent:
            hint = "" if install else " (peer install disabled)"
            skipped[scenario.name] = f"peer not importable: {', '.join(absent)}{hint}"
    return skipped
