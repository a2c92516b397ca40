"""The Valkey operations of rate limiting: one EVALSHA per check, one ZREM per lease release.

Keys: ``{prefix}:rl:{tag}:{bucket}:{algorithm}:{window}`` where ``tag`` is the digest of the
identity, so every window of one check shares a Cluster slot, and no client-controlled byte
reaches a key. Scripts read the server clock, so app servers with skewed clocks agree.

Every check carries a request id unique across processes, which makes it safe to retry
after a lost reply: the sliding log uses it as the sorted-set member (a replay finds itself);
the counter and GCRA scripts keep a small replay marker key next to the counters for the
length of one call budget.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cachemw.http.ratelimit import Decision, Rule, decision_from_reply
from cachemw.valkey import Script, Valkey, ValkeyCommandError, digest

__all__ = ["Bucket", "Lease", "RateLimitStore"]

FEATURE = "rl"
_SCRIPTS = {
    "sliding_log": Script("ratelimit_sliding_log"),
    "sliding_counter": Script("ratelimit_sliding_counter"),
    "gcra": Script("ratelimit_gcra"),
}
_ALGORITHM_PARTS = {"sliding_log": "log", "sliding_counter": "ctr", "gcra": "gcra"}
_LEASE_ACQUIRE = Script("ratelimit_lease_acquire")
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@dataclass(frozen=True, slots=True)
class Bucket:
    """A rule's counters for one bucket name, with everything but the identity pre-rendered."""

    rule: Rule
    name: str
    script: Script
    key_prefix: str  # "{prefix}:rl:{"
    key_suffixes: tuple[str, ...]  # "}:{bucket}:{algorithm}:{window}" per window
    window_args: tuple[int, ...]  # limit, window_us per window


@dataclass(frozen=True, slots=True)
class Lease:
    """A held concurrency slot; give it back with :meth:`RateLimitStore.release`."""

    key: str
    lease_id: str
    admitted: bool
    in_flight: int
    retry_after_micros: int


class RateLimitStore:
    """Counts requests in Valkey; raises the Valkey layer's errors for callers to map."""

    __slots__ = ("_id_prefix", "_ids", "_replay_ms", "valkey")

    def __init__(self, valkey: Valkey) -> None:
        self.valkey = valkey
        valkey.holds_state("rate limits")
        # Request ids: unique across processes (random prefix) and cheap (a counter).
        self._id_prefix = os.urandom(6).hex() + "."
        self._ids = itertools.count()
        # A replay marker must outlive every retry of its call: the whole call budget.
        self._replay_ms = math.ceil(valkey.settings.command_timeout * 1000) * 2 + 1000

    def new_request_id(self) -> str:
        return self._id_prefix + str(next(self._ids))

    def bucket(self, rule: Rule, name: str | None = None) -> Bucket:
        """Pre-render a rule's keys; ``name`` (default: the rule's bucket or name) must be a
        safe key part (a rule name or a digest)."""
        bucket_name = name or rule.bucket or rule.name
        algorithm = _ALGORITHM_PARTS[rule.algorithm]
        parts = [(bucket_name, algorithm, f"{w.seconds}s") for w in rule.windows]
        keyspace = self.valkey.keyspace
        for part in parts:
            keyspace.key(FEATURE, "0000", *part)  # validates every part once, here
        prefix = f"{keyspace.prefix}:{FEATURE}:{{"
        args: list[int] = []
        for window in rule.windows:
            args += (window.limit, window.micros)
        return Bucket(
            rule=rule,
            name=bucket_name,
            script=_SCRIPTS[rule.algorithm],
            key_prefix=prefix,
            key_suffixes=tuple("}:" + ":".join(part) for part in parts),
            window_args=tuple(args),
        )

    def keys(self, bucket: Bucket, identity: str) -> list[str]:
        """The keys of ``identity``'s counters in ``bucket`` (identity is digested)."""
        head = bucket.key_prefix + digest(identity)
        return [head + suffix for suffix in bucket.key_suffixes]

    async def hit(
        self,
        bucket: Bucket,
        identity: str,
        *,
        request_id: str | None = None,
        cost: int | None = None,
    ) -> Decision:
        """Check and record one request in every window of the bucket, all or none.

        One EVALSHA. Safe to retry: a call repeated with the same ``request_id`` (after a
        lost reply) is answered again without counting twice, so the Valkey layer may retry.
        """
        if request_id is None:
            request_id = self.new_request_id()
        elif not _REQUEST_ID_RE.fullmatch(request_id):
            raise ValueError(f"request_id must match {_REQUEST_ID_RE.pattern}, got {request_id!r}")
        rule = bucket.rule
        units = rule.cost if cost is None else cost
        keys = self.keys(bucket, identity)
        if rule.algorithm == "sliding_log":
            args: Sequence[int | str] = (units, request_id, *bucket.window_args)
        else:
            keys.append(keys[0] + ":replay:" + request_id)
            args = (units, self._replay_ms, *bucket.window_args)
        reply = await self.valkey.run_script(bucket.script, keys, args, idempotent=True)
        try:
            return decision_from_reply(rule, reply)
        except (TypeError, ValueError, IndexError) as exc:
            raise ValkeyCommandError(f"unexpected rate-limit script reply: {reply!r:.80}") from exc

    async def reset(self, bucket: Bucket, identity: str) -> None:
        """Forget ``identity``'s counters in ``bucket`` (e.g. after a successful login)."""
        await self.valkey.execute("DEL", *self.keys(bucket, identity))

    # -- concurrency limits (max in flight per key) --------------------------------------

    def lease_key(self, name: str, identity: str) -> str:
        return self.valkey.keyspace.key(FEATURE, digest(identity), name, "inflight")

    async def acquire(
        self, name: str, identity: str, *, max_in_flight: int, lease_seconds: float
    ) -> Lease:
        """Take one of ``max_in_flight`` slots for at most ``lease_seconds`` (one EVALSHA).

        A holder that crashes never releases: its lease expires by itself on the server
        clock. Retry-safe: a repeated call with the same lease id holds one slot.
        """
        key = self.lease_key(name, identity)
        lease_id = self.new_request_id()
        reply = await self.valkey.run_script(
            _LEASE_ACQUIRE,
            [key],
            [max_in_flight, math.ceil(lease_seconds * 1_000_000), lease_id],
            idempotent=True,
        )
        admitted, in_flight, retry_after = (int(v) for v in reply)
        return Lease(key, lease_id, admitted == 1, in_flight, retry_after)

    async def release(self, lease: Lease) -> None:
        """Give a slot back (one ZREM; idempotent)."""
        if lease.admitted:
            await self.valkey.execute("ZREM", lease.key, lease.lease_id, idempotent=True)
