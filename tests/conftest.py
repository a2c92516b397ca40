"""Shared fixtures: real Valkey servers (standalone and a 3-primary cluster) and clients.

Every test that takes ``valkey_url`` or ``valkey`` runs twice, once per ``[standalone]`` and
``[cluster]``, against real servers; data is flushed before each test.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from cachemw.valkey import Valkey, ValkeySettings
from cachemw.valkey.embedded import EmbeddedValkey
from tests.support import servers

# Generous enough for a loaded 2-core CI machine; fault tests set their own budgets.
TEST_COMMAND_TIMEOUT = 2.0


@pytest.fixture(scope="session")
def standalone_url() -> Iterator[str]:
    with servers.standalone_url() as url:
        yield url


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    with servers.cluster_url() as url:
        yield url


@pytest.fixture(params=["standalone", "cluster"])
def valkey_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a real, empty Valkey: once standalone, once a cluster."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    client = servers.sync_client(url)
    try:
        servers.flush_all(client)
        yield url
    finally:
        client.close()


@pytest.fixture
def valkey_sync(valkey_url: str) -> Iterator[redis.Redis | RedisCluster]:
    """A blocking client on the same server, to assert what Valkey holds."""
    client = servers.sync_client(valkey_url)
    try:
        yield client
    finally:
        client.close()


def make_settings(url: str, **overrides: object) -> ValkeySettings:
    values: dict[str, object] = {"url": url, "command_timeout": TEST_COMMAND_TIMEOUT}
    values.update(overrides)
    return ValkeySettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def valkey(valkey_url: str) -> AsyncIterator[Valkey]:
    """cachemw's client on a real, empty server (standalone and cluster)."""
    client = Valkey(make_settings(valkey_url))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def private_server() -> Iterator[EmbeddedValkey]:
    """A standalone server of this test's own, which the test may stop, kill and restart."""
    server = EmbeddedValkey().start()
    try:
        yield server
    finally:
        server.cleanup()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what imports and collection built: full collections then skip it."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _no_garbage_collection_inside_a_test() -> Iterator[None]:
    """Collect cyclic garbage between tests, never inside one.

    A full collection scans the suite's whole heap: measured at up to 1.8 s late in a run on
    a loaded 2-core machine. One landing inside a fault test's timed call looks exactly like
    a blown time budget, so the collector only runs between tests.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect(1)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show how many tests ran on each kind of real Valkey server."""
    counts: dict[str, dict[str, int]] = {"standalone": {}, "cluster": {}}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if getattr(report, "when", "call") != "call" and outcome == "passed":
                continue
            for kind, by_outcome in counts.items():
                if f"[{kind}" in nodeid or f"-{kind}]" in nodeid or f"-{kind}-" in nodeid:
                    by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
    terminalreporter.section("real Valkey servers")
    for kind, by_outcome in counts.items():
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(by_outcome.items()))
        terminalreporter.write_line(f"{kind}: {summary or 'no tests'}")
