"""Fixtures of the feature-level hardening tests: real Valkey (standalone and Cluster) behind
fault proxies, started once per session. Private servers come from ``private_server``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cachemw.valkey.embedded import EmbeddedCluster
from tests.support.proxied import ProxiedCluster, ProxiedStandalone


@pytest.fixture(scope="session")
def hardening_standalone() -> Iterator[ProxiedStandalone]:
    with ProxiedStandalone() as standalone:
        yield standalone


@pytest.fixture(scope="session")
def hardening_cluster() -> Iterator[ProxiedCluster]:
    with ProxiedCluster(primaries=3) as cluster:
        yield cluster


# Unproxied clusters whose slots and roles the server-state tests change (and restore).


@pytest.fixture(scope="session")
def one_node_cluster() -> Iterator[EmbeddedCluster]:
    """A cluster of one primary: removing any slot from it puts it in ``cluster_state:fail``
    (``cluster-require-full-coverage yes``, the default), so every command meets CLUSTERDOWN."""
    with EmbeddedCluster(primaries=1) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def two_primary_cluster() -> Iterator[EmbeddedCluster]:
    """Two primaries to move slots between (each test moves the slots its own data uses)."""
    with EmbeddedCluster(primaries=2) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def replicated_cluster() -> Iterator[EmbeddedCluster]:
    """One primary with one replica, for manual failovers (roles swap at each one)."""
    with EmbeddedCluster(primaries=1, replicas_per_primary=1) as cluster:
        yield cluster
