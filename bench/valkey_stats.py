"""Server-side counters around a load run: commands processed and Valkey CPU time.

Read with one ``INFO stats cpu`` per server (per primary in Cluster) before and after a run.
Valkey counts a command after running it, so the "before" INFO itself is inside the delta:
``commands_between`` subtracts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

from cachemw.valkey import ValkeyEndpoint, parse_valkey_url


@dataclass(frozen=True, slots=True, kw_only=True)
class ValkeyCounters:
    commands: int
    cpu_seconds: float
    info_calls: int  # INFO commands this snapshot sent (one per server)


def commands_between(before: ValkeyCounters, after: ValkeyCounters) -> int:
    """Commands the servers processed between two snapshots, not counting the INFO calls."""
    return max(0, after.commands - before.commands - before.info_calls)


def _counters(sections: dict[str, Any]) -> tuple[int, float]:
    commands = int(sections.get("total_commands_processed", 0))
    cpu = float(sections.get("used_cpu_user", 0.0)) + float(sections.get("used_cpu_sys", 0.0))
    return commands, cpu


def _standalone_client(endpoint: ValkeyEndpoint) -> redis.Redis:
    common: dict[str, Any] = {
        "username": endpoint.username,
        "password": endpoint.password,
        "db": endpoint.db,
        "socket_timeout": 5.0,
        "socket_connect_timeout": 5.0,
    }
    if endpoint.mode == "unix":
        return redis.Redis(unix_socket_path=endpoint.unix_path, **common)
    host, port = endpoint.hosts[0]
    return redis.Redis(
        host=host,
        port=port,
        ssl=endpoint.tls,
        ssl_cert_reqs=endpoint.tls_cert_reqs,
        ssl_ca_certs=endpoint.tls_ca_certs,
        **common,
    )


class ValkeyStats:
    """Blocking INFO reader for the Valkey the scenarios use (standalone, unix or Cluster)."""

    def __init__(self, url: str) -> None:
        self._endpoint = parse_valkey_url(url)
        self._standalone: redis.Redis | None = None
        self._cluster: RedisCluster | None = None
        if self._endpoint.mode == "cluster":
            self._cluster = RedisCluster(
                startup_nodes=[
                    ClusterNode(host, port)  # type: ignore[no-untyped-call]
                    for host, port in self._endpoint.hosts
                ],
                username=self._endpoint.username,
                password=self._endpoint.password,
                ssl=self._endpoint.tls,
                socket_timeout=5.0,
            )
        else:
            self._standalone = _standalone_client(self._endpoint)

    def snapshot(self) -> ValkeyCounters:
        if self._standalone is not None:
            commands, cpu = _counters(self._standalone.info("stats", "cpu"))
            return ValkeyCounters(commands=commands, cpu_seconds=cpu, info_calls=1)
        assert self._cluster is not None
        per_node = self._cluster.info("stats", "cpu", target_nodes=RedisCluster.PRIMARIES)
        totals = [_counters(sections) for sections in per_node.values()]
        return ValkeyCounters(
            commands=sum(commands for commands, _ in totals),
            cpu_seconds=sum(cpu for _, cpu in totals),
            info_calls=len(totals),
        )

    @property
    def tcp_port(self) -> int | None:
        """The port of a standalone TCP Valkey (None for unix sockets and Cluster)."""
        if self._endpoint.mode != "standalone":
            return None
        return self._endpoint.hosts[0][1]

    def new_standalone_client(self) -> redis.Redis | None:
        """A separate connection (e.g. for MONITOR), standalone only; the caller closes it."""
        if self._endpoint.mode == "cluster":
            return None
        return _standalone_client(self._endpoint)

    def echo(self, message: str) -> None:
        if self._standalone is not None:
            self._standalone.echo(message)

    def server_version(self) -> str:
        if self._standalone is not None:
            info = self._standalone.info("server")
        else:
            assert self._cluster is not None
            per_node = self._cluster.info("server", target_nodes=RedisCluster.PRIMARIES)
            info = next(iter(per_node.values()))
        version = info.get("valkey_version") or info.get("redis_version") or "unknown"
        mode = "cluster" if self._cluster is not None else self._endpoint.mode
        return f"Valkey {version} ({mode})"

    def close(self) -> None:
        if self._standalone is not None:
            self._standalone.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> ValkeyStats:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
