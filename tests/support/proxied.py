"""Real Valkey servers that clients reach only through fault proxies.

:class:`ProxiedStandalone` is one embedded server behind one :class:`FaultProxy`;
:class:`ProxiedCluster` is a Valkey Cluster whose nodes announce their proxy's port
(``--cluster-announce-port``), so CLUSTER SLOTS and every MOVED/ASK send the client to a
proxy and every client byte crosses one. The cluster bus stays direct: faults hit the
client's path only, never the nodes' view of each other.

Both run their proxies in threads (they outlive one test's event loop) and are always
embedded: the fault tests need to own the servers they break.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Literal

from redis.crc import key_slot

from cachemw.valkey.embedded import LOOPBACK, EmbeddedValkey, command, free_port
from tests.support.fault_proxy import FaultProxy
from tests.support.faults import Cut, Direction, Fault, ProxyStats

CLUSTER_SLOTS = 16384


class Proxied:
    """A server set plus its proxies; fault methods apply to every proxy."""

    mode: Literal["standalone", "cluster"]

    def __init__(self) -> None:
        self.nodes: list[EmbeddedValkey] = []
        self.proxies: list[FaultProxy] = []
        # Client settings a test bed asks for (e.g. the redis-py path instead of the
        # multiplexed one); set by the fixture that hands this object to a test.
        self.client_overrides: dict[str, object] = {}

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def primary_ports(self) -> list[int]:
        """Direct (unproxied) ports of the primaries, for set-up and assertions."""
        return [node.port for node in self.nodes]

    def proxy_for_key(self, key: str) -> FaultProxy:
        """The proxy in front of the node that owns ``key``."""
        return self.proxies[0]

    def admin(self, port: int, *args: str | int) -> object:
        """One command straight to a node, bypassing the proxies."""
        return command(port, *args)

    def flush(self) -> None:
        for port in self.primary_ports:
            self.admin(port, "FLUSHALL")
            self.admin(port, "SCRIPT", "FLUSH")

    def client_count(self, client_name: str) -> int:
        """Connections named ``client_name`` on every node (CLIENT LIST, as the server sees)."""
        total = 0
        for node in self.nodes:
            listing = str(self.admin(node.port, "CLIENT", "LIST"))
            total += sum(f" name={client_name} " in f"{line} " for line in listing.splitlines())
        return total

    def command_calls(self, name: str) -> int:
        """How many times the servers ran ``name`` (INFO commandstats), summed over nodes."""
        total = 0
        for node in self.nodes:
            for line in str(self.admin(node.port, "INFO", "commandstats")).splitlines():
                if line.startswith(f"cmdstat_{name.lower()}:calls="):
                    total += int(line.split("calls=", 1)[1].split(",", 1)[0])
        return total

    # -- faults on every proxy ---------------------------------------------------------

    def _each(self, make: Callable[[FaultProxy], Fault]) -> list[Fault]:
        return [make(proxy) for proxy in self.proxies]

    def add_latency(
        self,
        delay: float,
        *,
        jitter: float = 0.0,
        direction: Direction = "downstream",
        duration: float = 10.0,
    ) -> list[Fault]:
        return self._each(
            lambda p: p.add_latency(delay, jitter=jitter, direction=direction, duration=duration)
        )

    def limit_bandwidth(self, bytes_per_second: float, *, duration: float = 10.0) -> list[Fault]:
        return self._each(lambda p: p.limit_bandwidth(bytes_per_second, duration=duration))

    def slice_segments(
        self, size: int, *, delay: float = 0.0, duration: float = 10.0
    ) -> list[Fault]:
        return self._each(lambda p: p.slice_segments(size, delay=delay, duration=duration))

    def black_hole(self, *, drop: bool = False, duration: float = 10.0) -> list[Fault]:
        return self._each(lambda p: p.black_hole(drop=drop, duration=duration))

    def reset_after(
        self, n_bytes: int, *, times: int | None = None, duration: float = 10.0
    ) -> list[Fault]:
        return self._each(lambda p: p.reset_after(n_bytes, times=times, duration=duration))

    def close_after(
        self, n_bytes: int, *, times: int | None = None, duration: float = 10.0
    ) -> list[Fault]:
        return self._each(lambda p: p.close_after(n_bytes, times=times, duration=duration))

    def drop_replies(
        self, *, cut: Cut = "reset", times: int | None = None, duration: float = 10.0
    ) -> list[Fault]:
        return self._each(lambda p: p.drop_replies(cut=cut, times=times, duration=duration))

    def refuse_connections(self, *, duration: float = 10.0) -> None:
        for proxy in self.proxies:
            proxy.refuse_connections(duration=duration)

    def clear(self) -> None:
        for proxy in self.proxies:
            proxy.clear()

    def stats(self) -> ProxyStats:
        each = [proxy.stats for proxy in self.proxies]
        return ProxyStats(
            accepted=sum(s.accepted for s in each),
            open_links=sum(s.open_links for s in each),
            bytes_from_client=sum(s.bytes_from_client for s in each),
            bytes_from_server=sum(s.bytes_from_server for s in each),
        )

    # -- lifecycle -----------------------------------------------------------------------

    def cleanup(self) -> None:
        for proxy in self.proxies:
            proxy.close()
        for node in self.nodes:
            node.cleanup()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


class ProxiedStandalone(Proxied):
    """One standalone embedded server behind one threaded proxy."""

    mode: Literal["standalone", "cluster"] = "standalone"

    def __init__(self, *, extra_args: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.server = EmbeddedValkey(extra_args=extra_args)
        self.nodes = [self.server]

    @property
    def url(self) -> str:
        return self.proxies[0].url

    def start(self) -> ProxiedStandalone:
        try:
            self.server.start()
            self.proxies = [FaultProxy((LOOPBACK, self.server.port)).start_in_thread()]
        except BaseException:
            self.cleanup()
            raise
        return self

    def __enter__(self) -> ProxiedStandalone:
        return self.start()


class ProxiedCluster(Proxied):
    """A Valkey Cluster of ``primaries`` nodes (slots split evenly), optionally with
    ``replicas_per_primary`` replicas each, every node behind its own proxy."""

    mode: Literal["standalone", "cluster"] = "cluster"

    def __init__(
        self, *, primaries: int = 3, replicas_per_primary: int = 0, node_timeout_ms: int = 2000
    ) -> None:
        super().__init__()
        if primaries < 1:
            raise ValueError(f"primaries must be >= 1, got {primaries}")
        if replicas_per_primary < 0:
            raise ValueError(f"replicas_per_primary must be >= 0, got {replicas_per_primary}")
        self.primaries = primaries
        self.replicas_per_primary = replicas_per_primary
        self.node_timeout_ms = node_timeout_ms

    @property
    def primary_ports(self) -> list[int]:
        """Direct ports of the nodes started as primaries (before any failover)."""
        return [node.port for node in self.nodes[: self.primaries]]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{LOOPBACK}:{p.port}" for p in self.proxies)

    def start(self, timeout: float = 30.0) -> ProxiedCluster:
        try:
            for _ in range(self.primaries * (1 + self.replicas_per_primary)):
                port = free_port(with_bus=True)
                proxy = FaultProxy((LOOPBACK, port)).start_in_thread()
                self.proxies.append(proxy)
                announce = [
                    "--cluster-announce-port", str(proxy.port),
                    "--cluster-announce-bus-port", str(port + 10000),
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                ]  # fmt: skip
                self.nodes.append(
                    EmbeddedValkey(port=port, cluster=True, extra_args=announce).start()
                )
            per_node = CLUSTER_SLOTS // self.primaries
            for index, node in enumerate(self.nodes[: self.primaries]):
                first = index * per_node
                last = CLUSTER_SLOTS - 1 if index == self.primaries - 1 else first + per_node - 1
                self.admin(node.port, "CLUSTER", "ADDSLOTSRANGE", first, last)
            for node in self.nodes[1:]:
                self.admin(node.port, "CLUSTER", "MEET", LOOPBACK, self.nodes[0].port)
            if self.replicas_per_primary:
                _wait_until(self._all_known, timeout, "proxied cluster gossip")
                for index, replica in enumerate(self.nodes[self.primaries :]):
                    primary = self.nodes[index % self.primaries]
                    primary_id = str(self.admin(primary.port, "CLUSTER", "MYID"))
                    self.admin(replica.port, "CLUSTER", "REPLICATE", primary_id)
            _wait_until(self._state_ok, timeout, "proxied cluster_state:ok")
        except BaseException:
            self.cleanup()
            raise
        return self

    def proxy_for_key(self, key: str) -> FaultProxy:
        slot = key_slot(key.encode())
        index = min(slot // (CLUSTER_SLOTS // self.primaries), self.primaries - 1)
        return self.proxies[index]

    def _all_known(self) -> bool:
        return all(
            str(self.admin(node.port, "CLUSTER", "NODES")).count("connected") >= len(self.nodes)
            for node in self.nodes
        )

    def _state_ok(self) -> bool:
        for node in self.nodes:
            info = str(self.admin(node.port, "CLUSTER", "INFO"))
            if "cluster_state:ok" not in info:
                return False
            if f"cluster_known_nodes:{len(self.nodes)}" not in info:
                return False
        return True

    def __enter__(self) -> ProxiedCluster:
        return self.start()


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached after {timeout}s")
