"""A small bounded HTTP/1.1 load client on raw asyncio sockets (fallback when wrk is absent).

``connections`` keep-alive connections each send the same request back to back until the
deadline; every loop is bounded by the deadline and by ``max_requests``. It shares the CPU
with the app under test, so only ratios within one run are meaningful (as with wrk).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bench.load_result import LoadResult

MAX_HEADER_BYTES = 64 * 1024
MAX_REQUESTS = 2_000_000


class ResponseError(Exception):
    """The server sent something this client cannot read as an HTTP/1.1 response."""


@dataclass(slots=True)
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    remaining: int = MAX_REQUESTS


def parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """Status, Content-Length (None if absent), chunked?, connection close? of a response head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ResponseError(f"bad status line {lines[0][:80]!r}")
    length: int | None = None
    chunked = close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length":
            if not value.isdigit():
                raise ResponseError(f"bad Content-Length {value[:40]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.endswith(b"chunked")
        elif name == b"connection":
            close = value == b"close"
    return int(parts[1]), length, chunked, close


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one whole response; return its status and whether the server will close."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise ResponseError("response head too large") from exc
    status, length, chunked, close = parse_head(head[:-4])
    if status in (204, 304) or 100 <= status < 200:
        return status, close
    if chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        raise ResponseError("response without Content-Length or chunked body on keep-alive")
    return status, close


async def _keep_alive_requests(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: bytes,
    deadline: float,
    timeout: float,
    tally: _Tally,
) -> None:
    """Requests on one connection until the deadline, an error, or the server closes it."""
    while time.perf_counter() < deadline and tally.remaining > 0:
        tally.remaining -= 1
        started = time.perf_counter()
        try:
            writer.write(request)
            status, close = await asyncio.wait_for(read_response(reader), timeout)
        except (OSError, TimeoutError, ResponseError, asyncio.IncompleteReadError):
            tally.errors += 1
            return
        tally.latencies.append(time.perf_counter() - started)
        if status >= 400:
            tally.errors += 1
        if close:
            return


async def _connection(
    host: str, port: int, request: bytes, deadline: float, timeout: float, tally: _Tally
) -> None:
    """One client connection, reopened after errors, until the deadline."""
    while time.perf_counter() < deadline and tally.remaining > 0:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=MAX_HEADER_BYTES), timeout
            )
        except (OSError, TimeoutError):
            tally.errors += 1
            await asyncio.sleep(0.01)
            continue
        try:
            await _keep_alive_requests(reader, writer, request, deadline, timeout, tally)
        finally:
            writer.close()


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


async def _run(
    host: str, port: int, request: bytes, duration: float, connections: int, timeout: float
) -> LoadResult:
    tally = _Tally()
    started = time.perf_counter()
    deadline = started + duration
    async with asyncio.timeout(duration + timeout + 5.0):
        await asyncio.gather(
            *(
                _connection(host, port, request, deadline, timeout, tally)
                for _ in range(connections)
            )
        )
    elapsed = time.perf_counter() - started
    latencies = sorted(tally.latencies)
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000.0,
        p99_ms=percentile(latencies, 0.99) * 1000.0,
        errors=tally.errors,
    )


def run_python_load(
    *,
    host: str,
    port: int,
    request: bytes,
    duration: float,
    connections: int,
    request_timeout: float,
) -> LoadResult:
    """Blocking entry point: run the bounded load and return what it measured."""
    return asyncio.run(_run(host, port, request, duration, connections, request_timeout))
