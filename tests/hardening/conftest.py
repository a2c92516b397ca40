"""Fixtures of the feature-level hardening tests: real Valkey (standalone and Cluster) behind
fault proxies, started once per session. Private servers come from ``private_server``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.proxied import ProxiedCluster, ProxiedStandalone


@pytest.fixture(scope="session")
def hardening_standalone() -> Iterator[ProxiedStandalone]:
    with ProxiedStandalone() as standalone:
        yield standalone


@pytest.fixture(scope="session")
def hardening_cluster() -> Iterator[ProxiedCluster]:
    with ProxiedCluster(primaries=3) as cluster:
        yield cluster
