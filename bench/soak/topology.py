"""The Valkey the soak runs on, and the disruption it suffers halfway through the load.

* standalone: one server, stopped (SIGTERM) and started again ``RESTART_PAUSE`` later; it
  keeps nothing (no persistence), so everything written before is gone;
* cluster: three primaries with one replica each; one primary is killed (SIGKILL, as a
  crash), its replica is promoted by the cluster's own failover, then the killed node is
  started again and rejoins as a replica. Data lives on in the replica, except writes the
  primary acknowledged but had not yet replicated (replication is asynchronous).

Both record on the :class:`~bench.soak.samples.Timeline` when Valkey went away
(``valkey_stopped``) and when it served again (``valkey_started``). The disruption is
blocking (server processes, polling) and runs in a thread beside the load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from bench.soak.samples import Timeline
from cachemw.valkey.embedded import EmbeddedCluster, EmbeddedValkey, command, free_port

__all__ = [
    "RESTART_PAUSE",
    "ClusterFailover",
    "FailoverRecord",
    "SoakValkey",
    "StandaloneRestart",
    "Topology",
    "soak_valkey",
]

Topology = Literal["standalone", "cluster"]
RESTART_PAUSE = 2.0
PRIMARIES = 3
FAILOVER_TIMEOUT = 30.0  # node timeout 2 s + failure reports + election, on a busy machine
REJOIN_TIMEOUT = 30.0
POLL_INTERVAL = 0.05


class SoakValkey(Protocol):
    """What the driver needs from the Valkey under the soak."""

    topology: Topology

    @property
    def url(self) -> str: ...

    def start(self) -> None: ...

    def cleanup(self) -> None: ...

    def disrupt(self, timeline: Timeline) -> None:
        """Take Valkey (or part of it) away and bring it back; blocking."""


class StandaloneRestart:
    """One server without persistence, restarted (losing everything) halfway."""

    topology: Topology = "standalone"

    def __init__(self) -> None:
        self.server = EmbeddedValkey(port=free_port())

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    def cleanup(self) -> None:
        self.server.cleanup()

    def disrupt(self, timeline: Timeline) -> None:
        timeline.valkey_stopped = time.time()
        self.server.stop()
        time.sleep(RESTART_PAUSE)
        self.server.start()
        timeline.valkey_started = time.time()


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverRecord:
    """What happened to the killed primary, for the report."""

    killed_port: int
    slots: str  # "first-last" the killed primary served
    promoted_port: int
    rejoined_after: float  # seconds since the load started: the killed node is a replica


class ClusterFailover:
    """A cluster of three primaries with a replica each; primary 0 crashes halfway."""

    topology: Topology = "cluster"

    def __init__(self) -> None:
        self.cluster = EmbeddedCluster(primaries=PRIMARIES, replicas_per_primary=1)
        self.failover: FailoverRecord | None = None

    @property
    def url(self) -> str:
        return self.cluster.url

    def start(self) -> None:
        self.cluster.start()

    def cleanup(self) -> None:
        self.cluster.cleanup()

    def disrupt(self, timeline: Timeline) -> None:
        # EmbeddedCluster pairs replica i with primary i (REPLICATE in node order).
        victim = self.cluster.nodes[0]
        replica = self.cluster.nodes[PRIMARIES]
        survivors = self.cluster.nodes[1:]
        slots = _own_slots(victim.port)
        timeline.valkey_stopped = time.time()
        victim.kill()
        _wait(
            lambda: _role(replica.port) == "master" and all(_state_ok(n.port) for n in survivors),
            FAILOVER_TIMEOUT,
            "replica promoted and cluster_state:ok",
        )
        timeline.valkey_started = time.time()
        time.sleep(RESTART_PAUSE)
        victim.start()  # same nodes.conf: it learns it was failed over and follows the winner
        _wait(
            lambda: _role(victim.port) in ("slave", "replica"),
            REJOIN_TIMEOUT,
            "killed node rejoined",
        )
        self.failover = FailoverRecord(
            killed_port=victim.port,
            slots=slots,
            promoted_port=replica.port,
            rejoined_after=time.time() - timeline.load_started,
        )


def _role(port: int) -> str:
    try:
        reply = command(port, "ROLE", timeout=1.0)
    except (OSError, RuntimeError, ConnectionError):
        return "down"
    return str(reply[0]) if isinstance(reply, list) and reply else "unknown"


def _state_ok(port: int) -> bool:
    try:
        return "cluster_state:ok" in str(command(port, "CLUSTER", "INFO", timeout=1.0))
    except (OSError, RuntimeError, ConnectionError):
        return False


def _own_slots(port: int) -> str:
    """The slot ranges ``port`` serves, as CLUSTER SHARDS would list them: "a-b"."""
    reply = command(port, "CLUSTER", "SLOTS")
    assert isinstance(reply, list)
    ranges = [f"{start}-{end}" for start, end, primary, *_ in reply if primary[1] == port]
    return ", ".join(ranges) or "none"


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(POLL_INTERVAL)
    raise TimeoutError(f"{what}: not reached within {timeout:g} s")


def soak_valkey(topology: Topology) -> StandaloneRestart | ClusterFailover:
    return ClusterFailover() if topology == "cluster" else StandaloneRestart()
