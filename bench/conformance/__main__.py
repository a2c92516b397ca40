"""``python -m bench.conformance``: run the HTTP cache test suite and write CONFORMANCE.md.

1. installs ``http-cache-tests`` from the npm registry (once) into ``~/.cache/cachemw-conformance``
   (``CONFORMANCE_SUITE_DIR`` overrides);
2. starts an embedded Valkey, the suite's origin server and the proxy under test (uvicorn,
   h11, no Date header) on loopback ports;
3. runs the suite's client against the proxy and summarises the results (required tests
   passed/failed per suite, every required failure listed) into ``bench/CONFORMANCE.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.conformance.report import render_report, summarise
from cachemw.valkey.embedded import EmbeddedValkey, free_port

SUITE_VERSION = "0.4.5"
HERE = Path(__file__).resolve().parent
# Outside the repository, so node_modules never lands in git; override with the env var.
SUITE_DIR = Path(
    os.environ.get("CONFORMANCE_SUITE_DIR", Path.home() / ".cache" / "cachemw-conformance")
)
PACKAGE_DIR = SUITE_DIR / "node_modules" / "http-cache-tests"
REPORT = HERE.parent / "CONFORMANCE.md"
DESCRIBE = (HERE / "describe.mjs").read_text(encoding="utf-8")


def install_suite() -> None:
    if (PACKAGE_DIR / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed to install http-cache-tests")
    SUITE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(SUITE_DIR),
         f"http-cache-tests@{SUITE_VERSION}"],
        check=True,
    )  # fmt: skip


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {timeout} s")


def describe_tests(node: str) -> list[dict[str, object]]:
    script = SUITE_DIR / "describe.mjs"
    script.write_text(DESCRIBE, encoding="utf-8")
    output = subprocess.run(
        [node, "--no-warnings", str(script)], check=True, capture_output=True, text=True
    )
    tests: list[dict[str, object]] = json.loads(output.stdout)
    return tests


def run_suite(node: str, proxy_port: int) -> dict[str, object]:
    env = {
        **os.environ,
        "npm_config_base": f"http://127.0.0.1:{proxy_port}",
        "npm_package_config_id": "",  # cli.mjs runs every test when the id is empty
    }
    output = subprocess.run(
        [node, "--no-warnings", "cli.mjs"],
        cwd=PACKAGE_DIR,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    start = output.stdout.index("{")
    results: dict[str, object] = json.loads(output.stdout[start:])
    return results


def main() -> None:
    install_suite()
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is needed to run http-cache-tests")
    origin_port, proxy_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    with EmbeddedValkey() as valkey, tempfile.TemporaryDirectory() as scratch:
        try:
            origin_env = {
                **os.environ,
                "npm_config_port": str(origin_port),
                "npm_config_protocol": "http",
                "npm_config_pidfile": str(Path(scratch) / "server.pid"),
            }
            processes.append(
                subprocess.Popen(
                    [node, "--no-warnings", "server/server.mjs"], cwd=PACKAGE_DIR, env=origin_env
                )
            )
            proxy_env = {
                **os.environ,
                "CONFORMANCE_ORIGIN": f"http://127.0.0.1:{origin_port}",
                "CONFORMANCE_VALKEY": valkey.url,
            }
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.conformance.serve", str(proxy_port)],
                    cwd=HERE.parent.parent,
                    env=proxy_env,
                )
            )
            wait_for_port(origin_port)
            wait_for_port(proxy_port)
            results = run_suite(node, proxy_port)
            tests = describe_tests(node)
        finally:
            for process in processes:  # only the processes this harness started
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
    summary = summarise(tests, results)
    REPORT.write_text(render_report(summary, SUITE_VERSION), encoding="utf-8")
    print(f"required: {summary.passed} passed, {summary.failed} failed -> {REPORT}")


if __name__ == "__main__":
    main()
