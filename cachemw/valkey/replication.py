"""Fenced ``WAIT``: how many replicas hold the writes a primary acknowledged.

``WAIT`` only covers what *its own connection* wrote (the server remembers each client's last
replication offset), while the write being made durable went out on some other pooled
connection. So a fence goes first on the WAIT's connection: a script that sets and deletes a
key in the written key's slot (allowed even when Valkey is full), advancing the replication
offset past every write the primary acknowledged before it (one ordered replication stream).
That also makes a retry safe: each attempt fences again, so its count always covers the
caller's write.

One round trip (EVAL, not EVALSHA: a NOSCRIPT would leave the WAIT unfenced). WAIT's own
timeout is half of what is left of the budget, never 0 (which would block forever), so "too
few replicas" arrives as an answer within the budget, not as a timeout, even on a loaded
machine. The caller (:meth:`Valkey.wait_for_replicas`) applies the budget and the breaker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import PipelineCommand

from cachemw.valkey.scripts import Script

__all__ = ["fence_key", "fenced_wait_on_cluster", "fenced_wait_on_standalone"]

_FENCE = Script("replication_fence")
_MAX_REDIRECTS = 3  # a failover moves the slot at most once or twice


def fence_key(prefix: str, key: str) -> str:
    """The fence's key: in ``key``'s slot (its hash tag), under cachemw's prefix."""
    start = key.find("{")
    end = key.find("}", start + 1)
    if start < 0 or end <= start + 1:
        raise ValueError(f"wait_for_replicas needs a key with a hash tag, got {key!r}")
    return f"{prefix}:replwait:{key[start : end + 1]}"


def _commands(fence: str, replicas: int, deadline: float) -> list[tuple[Any, ...]]:
    wait_ms = max(1, int((deadline - asyncio.get_running_loop().time()) * 500))
    return [("EVAL", _FENCE.source, 1, fence), ("WAIT", replicas, wait_ms)]


def _acknowledged(replies: list[Any]) -> int:
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply
    return int(replies[-1])


async def fenced_wait_on_standalone(
    client: Redis, fence: str, replicas: int, deadline: float
) -> int:
    pipe = client.pipeline(transaction=False)
    for command in _commands(fence, replicas, deadline):
        pipe.execute_command(*command)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    return _acknowledged(replies)


async def fenced_wait_on_cluster(
    client: RedisCluster,
    key: str,
    fence: str,
    replicas: int,
    deadline: float,
    *,
    discover: Callable[[], Awaitable[None]],
) -> int:
    """On the primary that owns ``key``'s slot, following MOVED as redis-py would."""
    for _ in range(_MAX_REDIRECTS):
        if getattr(client, "_initialize", False):
            await discover()
        node = client.get_node_from_key(key)
        assert node is not None
        batch = [
            PipelineCommand(i, *cmd) for i, cmd in enumerate(_commands(fence, replicas, deadline))
        ]
        try:
            await node.execute_pipeline(batch)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError):
            # As redis-py does for its own calls: the node may have failed over.
            node.update_active_connections_for_reconnect()
            client._initialize = True
            raise
        moved = batch[0].result
        if not isinstance(moved, redis_errors.MovedError):
            return _acknowledged([command.result for command in batch])
        await client.nodes_manager.move_slot(moved)
    raise redis_errors.TryAgainError("the slot kept moving")
