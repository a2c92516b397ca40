"""Run the demo in process (``in_process``) or as ``make demo`` does (``DemoServer``:
``python -m demo_app`` on a free port, stopped by PID)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from cachemw.valkey.embedded import free_port
from demo_app.app import DemoApp, create_app
from demo_app.config import DEMO_SESSIONS, DemoConfig
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parents[2]
_VALKEY_PID = re.compile(r"started an embedded Valkey at \S+ \(pid (\d+)\)")


def patient_config(valkey_url: str, **overrides: Any) -> DemoConfig:
    """The demo on ``valkey_url`` with test budgets (2 s: a loaded CI machine stalls now and
    then, which the demo would rightly answer with a bypass or a fail-closed 503) and no
    artificial read delay, unless overridden."""
    values: dict[str, Any] = {
        "valkey": make_settings(valkey_url),
        "sessions": replace(DEMO_SESSIONS, store_timeout=2.0),
        "read_delay": 0,
        # A full collection per test would cost seconds late in a suite; tested on its own.
        "freeze_after_startup": False,
    }
    values.update(overrides)
    return DemoConfig(**values)


@asynccontextmanager
async def in_process(
    config: DemoConfig, *, peer: str = "203.0.113.7"
) -> AsyncIterator[tuple[DemoApp, httpx.AsyncClient]]:
    """The demo with its lifespan entered (as uvicorn would) and a client on it."""
    demo = create_app(config)
    transport = httpx.ASGITransport(app=demo, client=(peer, 50000))
    async with (
        demo.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client,
    ):
        yield demo, client


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class DemoServer:
    """One demo process; ``url`` once started; ``valkey_pid`` of its embedded Valkey."""

    def __init__(self, *, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = REPO / "tests" / "artifacts" / f"demo-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.valkey_pid: int | None = None
        environment = {k: v for k, v in os.environ.items() if k != "VALKEY_URL"}
        # A loaded CI machine can miss the default 50 ms Valkey budget now and then, which
        # the demo would (correctly) answer with a cache bypass or a fail-closed 503.
        environment.update(
            {
                "PORT": str(self.port),
                "PYTHONUNBUFFERED": "1",
                "CACHEMW_COMMAND_TIMEOUT": "2",
                "DEMO_SESSION_STORE_TIMEOUT_MS": "2000",
            }
        )
        environment.update(env or {})
        self.env = environment

    def start(self, timeout: float = 30.0) -> DemoServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "demo_app"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the demo exited with {self.process.returncode}: {self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            self.stop()
            raise TimeoutError(f"the demo did not answer within {timeout}s: {self.log()}")
        match = _VALKEY_PID.search(self.log())
        self.valkey_pid = int(match.group(1)) if match else None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM by PID (as Ctrl-C or `docker stop` would), SIGKILL if it hangs."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        return process.returncode
