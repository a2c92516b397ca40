"""Run one scenario app under uvicorn as a subprocess, and talk to it before the load.

One worker, ``--no-access-log``, loopback, a free port; the process is ours and is stopped
by its PID. Its CPU time is read from ``/proc/<pid>/stat`` (utime + stime, all threads).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.registry import Scenario
from bench.scenarios._common import VALKEY_URL_ENV
from cachemw.valkey.embedded import LOOPBACK, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class AppFailed(Exception):
    """The app did not start, or did not answer as its scenario expects."""


@dataclass(slots=True)
class RunningApp:
    scenario: Scenario
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    cookie_header: str | None = None
    if_none_match: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def request_headers(self) -> tuple[tuple[str, str], ...]:
        """The scenario's headers plus what preparing the app learned: the session cookie
        from ``setup_path``, the ETag to revalidate (``revalidate``)."""
        headers = list(self.scenario.headers)
        if self.cookie_header is not None:
            headers.append(("Cookie", self.cookie_header))
        if self.if_none_match is not None:
            headers.append(("If-None-Match", self.if_none_match))
        return tuple(headers)

    def last_log_line(self) -> str:
        """The app's last log line: for a crash, the exception (the full log stays on disk)."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip()[:200] if lines else ""


def log_findings(app: RunningApp) -> str | None:
    """What the app logged that a reader of the table should know (None if nothing):
    tracebacks, and circuit-breaker openings (cachemw logs each state change once)."""
    try:
        text = app.log_path.read_text(errors="replace").lower()
    except OSError:
        return None
    findings = []
    if (tracebacks := text.count("traceback (most recent call last)")) > 0:
        findings.append(f"{tracebacks} traceback(s)")
    if (openings := text.count("breaker opened")) > 0:
        findings.append(f"Valkey circuit breaker opened {openings} time(s)")
    if not findings:
        return None
    return f"{', '.join(findings)} (log: {app.log_path.relative_to(REPO_ROOT)})"


def uvicorn_command(scenario: Scenario, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", scenario.app,
        "--host", LOOPBACK, "--port", str(port),
        "--workers", "1", "--no-access-log", "--log-level", "warning", "--lifespan", "on",
        # What production runs (uvicorn[standard], fastapi[standard]): the C HTTP parser and
        # the libuv loop. Pure-Python h11 costs more per request than most of what is measured.
        "--http", "httptools", "--loop", "uvloop",
    ]  # fmt: skip


def start_app(
    scenario: Scenario, *, valkey_url: str, log_dir: Path, timeout: float = 30.0
) -> RunningApp:
    """Start the app and wait until its port accepts connections (after lifespan start-up)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = log_dir / f"{scenario.name}.log"
    env = {k: v for k, v in os.environ.items() if k != VALKEY_URL_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    if scenario.needs_valkey:  # an app that declares no Valkey gets none
        env[VALKEY_URL_ENV] = valkey_url
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # our own interpreter and arguments
            uvicorn_command(scenario, port),
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    app = RunningApp(scenario=scenario, port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AppFailed(f"uvicorn exited with {process.returncode}: {app.last_log_line()}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return app
        except OSError:
            time.sleep(0.05)
    stop_app(app)
    raise AppFailed(f"not listening after {timeout}s: {app.last_log_line()}")


def stop_app(app: RunningApp, timeout: float = 10.0) -> None:
    """SIGTERM by PID (uvicorn runs the lifespan shutdown), SIGKILL if it does not exit."""
    if app.process.poll() is None:
        app.process.send_signal(signal.SIGTERM)
        try:
            app.process.wait(timeout)
        except subprocess.TimeoutExpired:
            app.process.kill()
            app.process.wait(timeout)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Field 2 (comm) may contain spaces; everything after the last ')' is space-separated,
    # starting with field 3, so utime (14) and stime (15) are at indexes 11 and 12.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


def send_request(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
) -> Reply:
    connection.request(method, path, body=body or None, headers=dict(headers))
    response = connection.getresponse()
    response.read()
    return Reply(status=response.status, headers=tuple(response.getheaders()))


def prepare_app(app: RunningApp) -> None:
    """Log in (``setup_path``), send the warm-up requests one at a time, then, for a
    ``revalidate`` scenario, remember the ETag the load will send back in If-None-Match."""
    scenario = app.scenario
    connection = http.client.HTTPConnection(LOOPBACK, app.port, timeout=10)
    try:
        if scenario.setup_path is not None:
            reply = send_request(connection, "GET", scenario.setup_path, scenario.headers, b"")
            if reply.status >= 400:
                raise AppFailed(f"setup {scenario.setup_path} answered {reply.status}")
            cookies = [
                value.split(";", 1)[0].strip()
                for key, value in reply.headers
                if key.lower() == "set-cookie"
            ]
            if not cookies:
                raise AppFailed(f"setup {scenario.setup_path} set no cookie")
            app.cookie_header = "; ".join(cookies)
        path = scenario.path_for("warmup")
        for _ in range(scenario.warmup_requests):
            send_request(connection, scenario.method, path, app.request_headers(), scenario.body)
        if scenario.revalidate:
            reply = send_request(connection, scenario.method, path, app.request_headers(), b"")
            etag = reply.header("etag")
            if etag is None:
                raise AppFailed(f"revalidate: {path} answered {reply.status} without an ETag")
            app.if_none_match = etag
    except (OSError, http.client.HTTPException) as exc:
        raise AppFailed(f"warm-up failed: {exc!r}: {app.last_log_line()}") from exc
    finally:
        connection.close()


def probe_app(app: RunningApp) -> Reply:
    """One request checked against ``expect_status``/``expect_header``; raises AppFailed."""
    scenario = app.scenario
    connection = http.client.HTTPConnection(LOOPBACK, app.port, timeout=10)
    try:
        path = scenario.path_for("probe")
        reply = send_request(
            connection, scenario.method, path, app.request_headers(), scenario.body
        )
    except (OSError, http.client.HTTPException) as exc:
        raise AppFailed(f"probe failed: {exc!r}: {app.last_log_line()}") from exc
    finally:
        connection.close()
    if reply.status != scenario.expect_status:
        raise AppFailed(f"probe answered {reply.status}, expected {scenario.expect_status}")
    if scenario.expect_header is not None:
        name, fragment = scenario.expect_header
        value = reply.header(name)
        if value is None or fragment not in value:
            raise AppFailed(f"probe response header {name}={value!r}, expected {fragment!r}")
    return reply
