"""Fixtures of the fault tests: real Valkey (standalone and Cluster) behind fault proxies.

The servers are started once per session and always embedded (the tests must own what they
break); each test gets them flushed, with every fault cleared before and after it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.proxied import Proxied, ProxiedCluster, ProxiedStandalone


@pytest.fixture(scope="session")
def proxied_standalone() -> Iterator[ProxiedStandalone]:
    with ProxiedStandalone() as standalone:
        yield standalone


@pytest.fixture(scope="session")
def proxied_cluster() -> Iterator[ProxiedCluster]:
    with ProxiedCluster(primaries=3) as cluster:
        yield cluster


# Each topology runs twice: through the multiplexed fast path (GET, scripts, ...) and with
# it turned off, so every command goes through redis-py.
BEDS = {
    "standalone": ("proxied_standalone", {}),
    "standalone-redispy": ("proxied_standalone", {"multiplexed_connections": 0}),
    "cluster": ("proxied_cluster", {}),
    "cluster-redispy": ("proxied_cluster", {"multiplexed_connections": 0}),
}


@pytest.fixture(params=list(BEDS))
def proxied(request: pytest.FixtureRequest) -> Iterator[Proxied]:
    """A real Valkey reachable only through fault proxies (standalone on both client paths,
    and Cluster)."""
    fixture_name, overrides = BEDS[request.param]
    target: Proxied = request.getfixturevalue(fixture_name)
    target.clear()
    target.flush()
    target.client_overrides = dict(overrides)
    try:
        yield target
    finally:
        target.client_overrides = {}
        target.clear()
