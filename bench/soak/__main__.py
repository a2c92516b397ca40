"""``python -m bench.soak [--cluster] [--seconds N] [--output PATH] [--valkey-timeout S]``: run
the soak, write the report; exit status 1 when a promise did not hold.

Standalone (the default) restarts one Valkey halfway; ``--cluster`` runs on a three-primary
Cluster with a replica each and kills one primary halfway (its replica takes over). Each
writes its own section of the report and keeps the other's."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.soak.analysis import analyse
from bench.soak.app import LOGIN_LIMIT, SEARCH_LIMIT
from bench.soak.catalog import Catalog
from bench.soak.load import ALL_PRODUCTS, HOT_PRODUCTS, LoadShape, VirtualUsers
from bench.soak.processes import UvicornServer, resident_kib
from bench.soak.report import RssFigures, RunParameters, format_report, merge_report, verdicts
from bench.soak.samples import SoakRecord, WorkerStats
from bench.soak.topology import RESTART_PAUSE, ClusterFailover, SoakValkey, soak_valkey
from cachemw.valkey import ValkeySettings
from cachemw.valkey.embedded import free_port

logger = logging.getLogger("bench.soak")

WORKERS = 2
# The breaker probes again `breaker_reset_timeout` after it opened; one more second for the
# probe and the pool to reconnect.
BREAKER_GRACE = ValkeySettings().breaker_reset_timeout + 1.0
WARM_UP_REQUESTS = 400
WARM_UP_SECONDS = 20.0
# The machine running the soak also runs the load generator, both workers and Valkey on a
# few CPUs (and maybe other work): 50 ms, right for a dedicated Valkey next to the app, is
# missed when the CPUs are contended and a fail-closed route would answer 503 for it.
DEFAULT_VALKEY_TIMEOUT = 0.25
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "SOAK.md"


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration (10..3600)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run on a 3-primary Valkey Cluster with replicas and kill one primary halfway",
    )
    parser.add_argument(
        "--valkey-timeout",
        type=float,
        default=DEFAULT_VALKEY_TIMEOUT,
        help="the app's Valkey command budget in seconds (cachemw's default is 0.05)",
    )
    arguments = parser.parse_args(argv)
    if not 10 <= arguments.seconds <= 3600:
        parser.error(f"--seconds must be in 10..3600, got {arguments.seconds:g}")
    if not 0.001 <= arguments.valkey_timeout <= 5:
        parser.error(f"--valkey-timeout must be in 0.001..5 s, got {arguments.valkey_timeout:g}")
    return arguments


def _warm_up(base_url: str) -> set[int]:
    """Bounded: every route on both workers (a new connection per request, so the kernel
    spreads them), before the first RSS reading. Returns the worker PIDs that answered."""
    paths = [f"/products/{i}" for i in range(1, HOT_PRODUCTS + 1)] + ["/search", "/stats"]
    workers: set[int] = set()
    deadline = time.monotonic() + WARM_UP_SECONDS
    for number in range(WARM_UP_REQUESTS):
        if time.monotonic() >= deadline:
            break
        with httpx.Client(base_url=base_url, timeout=5.0) as client:
            response = client.get(paths[number % len(paths)])
            if number % 10 == 0:
                client.post(f"/login/warmup{number % 7}")
                client.post(f"/cart/warm{number}")
                client.get("/me")
            workers.add(int(response.headers["x-soak-worker"]))
    return workers


async def _load(server: UvicornServer, valkey: SoakValkey, seconds: float, seed: int) -> SoakRecord:
    record = SoakRecord()
    users = VirtualUsers(server.base_url, LoadShape(), record, seed)

    async def restart_valkey() -> None:
        await asyncio.sleep(seconds / 2 - RESTART_PAUSE / 2)
        await asyncio.to_thread(valkey.disrupt, record.timeline)
        logger.info("Valkey (%s) serving again after the disruption", valkey.topology)

    record.timeline.load_started = time.time()
    restart = asyncio.create_task(restart_valkey())

    async def after_load() -> None:
        await restart  # Valkey must be back before the carts are read
        record.timeline.load_ended = time.time()

    try:
        await users.run(time.monotonic() + seconds, before_carts=after_load)
    finally:
        if not restart.done():
            restart.cancel()
    return record


def _worker_stats(base_url: str, workers: set[int], record: SoakRecord) -> None:
    """Each worker's /stats (bounded: a new connection per try until every worker answered)."""
    for _ in range(WARM_UP_REQUESTS):
        if workers <= record.workers.keys():
            return
        with httpx.Client(base_url=base_url, timeout=5.0) as client:
            body = client.get("/stats").json()
        record.workers[int(body["worker"])] = WorkerStats(
            invalidation_errors=int(body["invalidation_errors"]),
            loop_stalls=[(float(at), float(late)) for at, late in body["loop_stalls"]],
        )


def _load_average() -> str:
    """The 1-minute load average (the soak shares the machine with whatever else runs)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "?"


def _rss(pids: set[int]) -> dict[int, int]:
    return {pid: kib for pid in pids if (kib := resident_kib(pid)) is not None}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per request
    # SIGTERM (make interrupted, CI timeout) unwinds like Ctrl-C, so `finally` stops by PID
    # everything this run started.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    arguments = _arguments(argv)
    shape = LoadShape()
    with tempfile.TemporaryDirectory(prefix="cachemw-soak-") as scratch:
        catalog = Catalog(Path(scratch) / "catalog.sqlite3")
        catalog.create(ALL_PRODUCTS)
        valkey = soak_valkey("cluster" if arguments.cluster else "standalone")
        server = UvicornServer(
            port=free_port(),
            workers=WORKERS,
            env={
                "SOAK_VALKEY_URL": valkey.url,
                "SOAK_DB": str(catalog.path),
                "SOAK_VALKEY_TIMEOUT": str(arguments.valkey_timeout),
            },
            log_path=Path(scratch) / "uvicorn.log",
        )
        try:
            valkey.start()
            server.start()
            server.wait_until_ready()
            workers = _warm_up(server.base_url)
            logger.info("warm-up done, workers %s", sorted(workers))
            rss_start = _rss(workers)
            load_before = _load_average()
            record = asyncio.run(_load(server, valkey, arguments.seconds, arguments.seed))
            workers |= {s.worker for s in record.samples if s.worker is not None}
            rss = RssFigures(start=rss_start, end=_rss(workers))
            _worker_stats(server.base_url, workers, record)
            load_after = _load_average()
        except BaseException:
            log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
            sys.stderr.write(f"soak failed; uvicorn log:\n{log[-4000:]}\n")
            raise
        finally:
            server.stop()
            valkey.cleanup()
    figures = analyse(
        record, breaker_grace=BREAKER_GRACE, search_limit=SEARCH_LIMIT, login_limit=LOGIN_LIMIT
    )
    params = RunParameters(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        seconds=arguments.seconds,
        workers=WORKERS,
        users={
            "readers": shape.readers,
            "missers": shape.missers,
            "updaters": shape.updaters,
            "shoppers": shape.shoppers,
            "searchers": shape.searchers,
            "login hammers": shape.login_hammers,
        },
        pause=shape.pause,
        valkey_url=valkey.url,
        app_url=server.base_url,
        restart_pause=RESTART_PAUSE,
        topology=valkey.topology,
        failover=valkey.failover if isinstance(valkey, ClusterFailover) else None,
        search_limit=SEARCH_LIMIT,
        login_limit=LOGIN_LIMIT,
        machine=f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; 1-minute load average {load_before} at the "
        f"start of the load, {load_after} at its end",
        valkey_timeout=arguments.valkey_timeout,
    )
    existing = arguments.output.read_text() if arguments.output.exists() else ""
    arguments.output.write_text(merge_report(existing, format_report(params, figures, rss)))
    checks = verdicts(figures, rss)
    for check in checks:
        print(f"{'ok  ' if check.holds else 'FAIL'} {check.promise}: {check.figure}")
    print(f"report written to {arguments.output}")
    return 0 if all(check.holds for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
