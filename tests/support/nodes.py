"""Blocking admin probes of single Valkey nodes, for tests that change a server's state.

Each helper sends one command straight to a node's port (never through a client or proxy)
and reads the answer as an operator would: its role, its replication progress, its cluster
state, who owns a slot, how often it answered a redirect. They block, so async tests run
them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cachemw.valkey.embedded import EmbeddedCluster, command

STATE_TIMEOUT = 15.0
REDIRECTS = ("MOVED", "ASK", "TRYAGAIN")


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = STATE_TIMEOUT) -> None:
    """Blocking poll for set-up (run it in a thread from async code)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.02)


def reply_of(port: int, *args: str | int) -> object:
    """A node's reply, its error text (LOADING, CLUSTERDOWN, ...), or "down"."""
    try:
        return command(port, *args, timeout=1.0)
    except RuntimeError as exc:
        return str(exc)
    except OSError:
        return "down"


def role(port: int) -> str:
    reply = reply_of(port, "ROLE")
    return str(reply[0]) if isinstance(reply, list) else str(reply)


def replication_info(port: int) -> dict[str, str]:
    lines = str(reply_of(port, "INFO", "replication")).splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def caught_up(replica: int, primary: int) -> bool:
    """The replica's initial sync is done and it has applied all the primary wrote."""
    info = replication_info(replica)
    return (
        info.get("master_link_status") == "up"
        and info.get("master_sync_in_progress") == "0"
        and int(info.get("master_repl_offset", -1))
        >= int(replication_info(primary)["master_repl_offset"])
    )


def cluster_state(port: int) -> str:
    return str(reply_of(port, "CLUSTER", "INFO")).split("cluster_state:", 1)[-1].split()[0]


def is_loading(port: int) -> bool:
    return str(reply_of(port, "GET", "probe")).startswith("LOADING")


def node_id(port: int) -> str:
    return str(command(port, "CLUSTER", "MYID"))


def owner_of(cluster: EmbeddedCluster, slot: int) -> int:
    """The port of the primary serving ``slot``, as every node sees it (0 while they differ)."""
    owners = set()
    for node in cluster.nodes:
        reply = command(node.port, "CLUSTER", "SLOTS")
        assert isinstance(reply, list)
        owners |= {primary[1] for start, end, primary, *_ in reply if start <= slot <= end}
    return owners.pop() if len(owners) == 1 else 0


def owned_by(cluster: EmbeddedCluster, slot: int, port: int) -> Callable[[], bool]:
    return lambda: owner_of(cluster, slot) == port


def redirects_answered(cluster: EmbeddedCluster) -> dict[str, int]:
    """How often the nodes answered each redirect (INFO errorstats), summed over nodes."""
    counts = dict.fromkeys(REDIRECTS, 0)
    for node in cluster.nodes:
        for line in str(reply_of(node.port, "INFO", "errorstats")).splitlines():
            name, _, rest = line.partition(":count=")
            code = name.removeprefix("errorstat_")
            if code in counts:
                counts[code] += int(rest)
    return counts
