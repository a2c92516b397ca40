"""Real Valkey servers for the test suite: embedded by default, external when configured.

``CACHEMW_TEST_VALKEY_URL`` and ``CACHEMW_TEST_CLUSTER_URL`` point the suite at servers
someone else runs (their data is flushed between tests, so never point them at real data).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.cluster import RedisCluster

from cachemw.valkey.embedded import EmbeddedCluster, EmbeddedValkey
from cachemw.valkey.url import parse_valkey_url

STANDALONE_ENV = "CACHEMW_TEST_VALKEY_URL"
CLUSTER_ENV = "CACHEMW_TEST_CLUSTER_URL"


@contextmanager
def standalone_url() -> Iterator[str]:
    if os.environ.get(STANDALONE_ENV):
        yield os.environ[STANDALONE_ENV]
        return
    with EmbeddedValkey() as server:
        yield server.url


@contextmanager
def cluster_url() -> Iterator[str]:
    if os.environ.get(CLUSTER_ENV):
        yield os.environ[CLUSTER_ENV]
        return
    with EmbeddedCluster(primaries=3) as cluster:
        yield cluster.url


def sync_client(url: str) -> redis.Redis | RedisCluster:
    """A blocking client for test set-up and for asserting what Valkey holds."""
    endpoint = parse_valkey_url(url)
    if endpoint.mode == "cluster":
        host, port = endpoint.hosts[0]
        return RedisCluster(host=host, port=port, password=endpoint.password)
    return redis.Redis.from_url(url.replace("valkey://", "redis://", 1))


def flush_all(client: redis.Redis | RedisCluster) -> None:
    if isinstance(client, RedisCluster):
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
    else:
        client.flushdb()


def all_keys(client: redis.Redis | RedisCluster) -> list[bytes]:
    """Every key on every primary (SCAN; fine for the small test data set)."""
    if isinstance(client, RedisCluster):
        return sorted(client.scan_iter(count=1000, target_nodes=RedisCluster.PRIMARIES))
    return sorted(client.scan_iter(count=1000))
