"""The processes the soak starts: uvicorn (a master and its workers), stopped by PID only."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["UvicornServer", "resident_kib"]

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def resident_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB from /proc/<pid>/status; None when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _is_our_worker(pid: int) -> bool:
    """Still running, and still a Python multiprocessing child (not a reused PID)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"multiprocessing" in command or b"uvicorn" in command


class UvicornServer:
    """``uvicorn bench.soak.app:create_app --factory --workers N`` on a loopback port."""

    def __init__(self, *, port: int, workers: int, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self.workers = workers
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.worker_pids: set[int] = set()  # children of our master, recorded while it runs

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable, "-m", "uvicorn", "bench.soak.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def wait_until_ready(self) -> None:
        """Bounded: every worker must have started (the master has N children) and the port
        must answer."""
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.process.returncode}; see {self}")
            self.worker_pids.update(_children(self.process.pid))
            with contextlib.suppress(httpx.HTTPError):
                ready = httpx.get(f"{self.base_url}/stats", timeout=1.0).status_code == 200
                if ready and len(self.worker_pids) >= self.workers:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"uvicorn on port {self.port} not ready after {READY_TIMEOUT}s")

    def stop(self) -> None:
        """SIGTERM the master (it stops its workers), SIGKILL whatever of ours is left."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            self.worker_pids.update(_children(process.pid))
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        for pid in sorted(self.worker_pids):
            if _is_our_worker(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def __str__(self) -> str:
        return f"uvicorn on {self.base_url} (log {self.log_path})"
