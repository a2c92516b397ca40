"""Drive HTTP load at one running app: Debian's ``wrk`` when present, else ``bench.pyload``.

Every run is bounded in time (``duration`` plus a fixed grace) — nothing here loops forever.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.load_result import LoadResult
from bench.pyload import run_python_load

WRK_GRACE_SECONDS = 15.0


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadSpec:
    """What to send, where, for how long and how concurrently."""

    host: str
    port: int
    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    duration: float = 5.0
    connections: int = 32
    threads: int = 1
    request_timeout: float = 5.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_load(spec: LoadSpec, *, generator: str, work_dir: Path) -> LoadResult:
    """Run ``generator`` ("wrk" or "python") once against ``spec``."""
    if generator == "wrk":
        return run_wrk(spec, work_dir=work_dir)
    if generator == "python":
        return run_python_load(
            host=spec.host,
            port=spec.port,
            request=build_request(spec),
            duration=spec.duration,
            connections=spec.connections,
            request_timeout=spec.request_timeout,
        )
    raise ValueError(f"generator must be 'wrk' or 'python', got {generator!r}")


def build_request(spec: LoadSpec) -> bytes:
    """The raw HTTP/1.1 request the Python client sends on every keep-alive round."""
    lines = [f"{spec.method} {spec.path} HTTP/1.1", f"Host: {spec.host}:{spec.port}"]
    lines += [f"{name}: {value}" for name, value in spec.headers]
    if spec.body or spec.method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(spec.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + spec.body


def _lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{byte:03d}" for byte in data) + '"'


def wrk_script(spec: LoadSpec) -> str | None:
    """A wrk Lua script for what ``-H`` cannot express (method, body); None when not needed."""
    if spec.method == "GET" and not spec.body:
        return None
    script = [f'wrk.method = "{spec.method}"']
    if spec.body:
        script.append(f"wrk.body = {_lua_string(spec.body)}")
    return "\n".join(script) + "\n"


def wrk_command(spec: LoadSpec, *, script_path: Path | None) -> list[str]:
    command = [
        "wrk",
        f"--threads={spec.threads}",
        f"--connections={spec.connections}",
        f"--duration={max(1, round(spec.duration))}s",
        f"--timeout={max(1, round(spec.request_timeout))}s",
        "--latency",
    ]
    for name, value in spec.headers:
        command += ["--header", f"{name}: {value}"]
    if script_path is not None:
        command += ["--script", str(script_path)]
    command.append(spec.url)
    return command


def run_wrk(spec: LoadSpec, *, work_dir: Path) -> LoadResult:
    script = wrk_script(spec)
    script_path: Path | None = None
    if script is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        script_path = work_dir / f"wrk-{spec.port}.lua"
        script_path.write_text(script)
    completed = subprocess.run(
        wrk_command(spec, script_path=script_path),
        capture_output=True,
        text=True,
        timeout=spec.duration + WRK_GRACE_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk exited {completed.returncode}: {completed.stderr.strip()[-500:]}")
    return parse_wrk_output(completed.stdout)


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_DURATION_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)\b", re.M)
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk_output(text: str) -> LoadResult:
    """Read requests, duration, p50/p99 and errors from ``wrk --latency`` output."""
    total = _TOTAL.search(text)
    if total is None:
        raise ValueError(f"no 'N requests in T' line in wrk output: {text[-300:]!r}")
    percentiles = {
        match.group(1): float(match.group(2)) * _UNIT_MS[match.group(3)]
        for match in _PERCENTILE.finditer(text)
    }
    if "50" not in percentiles or "99" not in percentiles:
        raise ValueError(f"no latency distribution in wrk output (run with --latency): {text!r}")
    errors = 0
    non_2xx = _NON_2XX.search(text)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = _SOCKET_ERRORS.search(text)
    if socket_errors:
        errors += sum(int(count) for count in socket_errors.groups())
    return LoadResult(
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * _DURATION_S[total.group(3)],
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        errors=errors,
    )
