"""Stampede measurement: N simultaneous requests for one cold key, and how often the origin ran.

All connections are opened first; then every request is written in the same event-loop pass,
so they reach the app together. Latency runs from that write to the full response. Bounded:
connecting and the whole burst each have a deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass

from bench.pyload import percentile, read_response


@dataclass(frozen=True, kw_only=True, slots=True)
class BurstResult:
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float


async def _one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, started: float
) -> float | None:
    try:
        writer.write(request)
        status, _ = await read_response(reader)
    except (OSError, ValueError, asyncio.IncompleteReadError):
        return None
    finally:
        writer.close()
    return time.perf_counter() - started if status < 400 else None


async def _burst(host: str, port: int, request: bytes, size: int, timeout: float) -> BurstResult:
    async with asyncio.timeout(timeout):
        connections = await asyncio.gather(
            *(asyncio.open_connection(host, port) for _ in range(size)), return_exceptions=True
        )
    opened = [c for c in connections if not isinstance(c, BaseException)]
    started = time.perf_counter()
    async with asyncio.timeout(timeout):
        outcomes = await asyncio.gather(
            *(_one(reader, writer, request, started) for reader, writer in opened)
        )
    latencies = sorted(o for o in outcomes if o is not None)
    return BurstResult(
        requests=size,
        errors=size - len(latencies),
        p50_ms=percentile(latencies, 0.50) * 1000.0,
        p99_ms=percentile(latencies, 0.99) * 1000.0,
    )


def run_burst(
    *, host: str, port: int, request: bytes, size: int, timeout: float = 30.0
) -> BurstResult:
    """Blocking entry point: one burst of ``size`` simultaneous requests."""
    return asyncio.run(_burst(host, port, request, size, timeout))


def origin_calls(host: str, port: int, path: str) -> int:
    """The app's origin-call counter (``{"calls": N}`` at ``path``)."""
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as response:
        return int(json.loads(response.read())["calls"])
