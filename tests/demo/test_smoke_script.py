"""``demo_app/smoke.sh``: the issue's acceptance steps with curl, against ``python -m demo_app``
started as ``make demo`` does (embedded Valkey, PORT), then stopped by PID."""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest

from tests.demo.server import REPO, DemoServer, pid_alive

pytestmark = pytest.mark.slow


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="smoke.sh needs curl")


def run_smoke_script(server: DemoServer) -> None:
    result = subprocess.run(
        ["bash", str(REPO / "demo_app" / "smoke.sh"), server.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr + server.log()
    assert "all 11 smoke steps passed" in result.stdout


@needs_curl
def test_smoke_script_passes_against_a_running_demo(demo_server: DemoServer) -> None:
    run_smoke_script(demo_server)


@needs_curl
def test_smoke_script_passes_against_the_demo_on_the_valkey_of_valkey_url(
    valkey_url: str,
) -> None:
    server = DemoServer(env={"VALKEY_URL": valkey_url}).start()
    try:
        assert server.valkey_pid is None  # no embedded server when VALKEY_URL is set
        run_smoke_script(server)
    finally:
        server.stop()


def test_demo_prints_its_url_and_logs_the_cache_outcome_per_request(
    demo_server: DemoServer,
) -> None:
    httpx.get(f"{demo_server.url}/products/2", timeout=5)
    time.sleep(0.2)  # the first GET's entry is written just after its body went out
    hit = httpx.get(f"{demo_server.url}/products/2", timeout=5)
    assert len(hit.headers.get_list("date")) == 1  # uvicorn's own Date is turned off
    deadline = time.monotonic() + 5
    while "GET /products/2 200" not in demo_server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = demo_server.log()
    assert f"cachemw demo: open http://127.0.0.1:{demo_server.port}/" in log
    assert "GET /products/2 200" in log
    assert "cache=miss" in log
    assert "cache=hit" in log


def test_stopping_the_demo_stops_its_embedded_valkey(demo_server: DemoServer) -> None:
    valkey_pid = demo_server.valkey_pid
    assert valkey_pid is not None, demo_server.log()
    assert pid_alive(valkey_pid)
    demo_server.stop()
    deadline = time.monotonic() + 5
    while pid_alive(valkey_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(valkey_pid)
    assert "stopped the embedded Valkey" in demo_server.log()
