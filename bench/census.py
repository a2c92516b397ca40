"""Command census: how many commands one request makes the app send to Valkey.

``INFO`` counts every command Valkey runs, including those a Lua script calls, so a
one-EVALSHA rate limit shows up as 8. The design counts what the app sends (round trips,
STYLE rule 4). So, once per scenario and outside the timed runs: attach ``MONITOR``, send a
few requests one at a time, and count the commands that came from the app's own connections
(MONITOR marks script-internal calls as ``lua``; the app's connections are found in
``/proc/<pid>``). Sequential requests also mean no in-process coalescing hides a command.
Standalone Valkey over TCP only (None otherwise).
"""

from __future__ import annotations

import contextlib
import http.client
import re
import time
from pathlib import Path

import redis

from bench.apps import RunningApp, send_request
from bench.valkey_stats import ValkeyStats
from cachemw.valkey.embedded import LOOPBACK

CENSUS_REQUESTS = 50
MAX_MONITOR_LINES = 200_000
_MARKER = "bench-census-end"
# "1700000000.123456 [0 127.0.0.1:51234] "GET" "key"" / "... [0 lua] ..."
_MONITOR_LINE = re.compile(rb"^\d+\.\d+ \[\d+ ([^\]]*)\] (.*)$", re.S)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = fd.readlink().as_posix()
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def connected_local_ports(pid: int, remote_port: int) -> set[int]:
    """Local ports of the process's TCP connections to ``remote_port``."""
    inodes = _socket_inodes(pid)
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def count_commands(lines: list[bytes], ports: set[int]) -> int:
    """Commands in MONITOR ``lines`` sent by a client on one of ``ports`` (not from Lua)."""
    count = 0
    for line in lines:
        match = _MONITOR_LINE.match(line)
        if match is None:
            continue
        source = match.group(1)
        if source == b"lua" or b":" not in source:
            continue
        if int(source.rsplit(b":", 1)[1]) in ports:
            count += 1
    return count


def _read_until_marker(monitor: redis.client.Monitor) -> list[bytes]:
    lines: list[bytes] = []
    for _ in range(MAX_MONITOR_LINES):
        raw = monitor.connection.read_response()
        line = raw if isinstance(raw, bytes) else str(raw).encode()
        if _MARKER.encode() in line and b'"ECHO"' in line.upper():
            return lines
        lines.append(line)
    raise RuntimeError(f"no census marker within {MAX_MONITOR_LINES} MONITOR lines")


def app_commands_per_request(app: RunningApp, stats: ValkeyStats) -> float | None:
    """Commands the app sends to Valkey per request, from a short sequential sample."""
    port = stats.tcp_port
    client = stats.new_standalone_client()
    if port is None or client is None:
        return None
    scenario = app.scenario
    path = scenario.path_for("census")
    try:
        with client.monitor() as monitor:  # type: ignore[no-untyped-call]
            connection = http.client.HTTPConnection(LOOPBACK, app.port, timeout=10)
            try:
                for _ in range(CENSUS_REQUESTS):
                    send_request(
                        connection, scenario.method, path, app.request_headers(), scenario.body
                    )
            finally:
                connection.close()
            time.sleep(0.2)  # let work the app finishes after responding reach Valkey too
            stats.echo(_MARKER)
            ports = connected_local_ports(app.pid, port)
            lines = _read_until_marker(monitor)
    finally:
        client.close()
    return count_commands(lines, ports) / CENSUS_REQUESTS
