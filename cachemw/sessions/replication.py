"""Durable deletions: a logout is acknowledged only once enough replicas hold it.

Valkey replicates asynchronously. Without this, a logout the primary ran and acknowledged
can be missing on the replica that is promoted when that primary dies a moment later, and
the old cookie works again. With ``SessionConfig.logout_replicas = N`` every deletion is
followed by :meth:`Valkey.wait_for_replicas` on the deleted key's primary (one more round
trip); fewer than ``N`` confirmations within the store budget raise
:class:`SessionNotReplicated`, which the middleware answers with 503.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from cachemw.metrics import Metrics
from cachemw.sessions.errors import SessionNotReplicated, SessionStoreUnavailable
from cachemw.sessions.ids import SessionRef
from cachemw.valkey import Keyspace, Valkey, ValkeyError

__all__ = ["DELETION_NOT_REPLICATED", "DeletionReplication"]

logger = logging.getLogger("cachemw.sessions")

DELETION_NOT_REPLICATED = "deletion_not_replicated"


class DeletionReplication:
    """Waits for ``replicas`` replicas after a deletion; logs once per change of outcome."""

    __slots__ = ("_falling_short", "keyspace", "metrics", "replicas", "timeout", "valkey")

    def __init__(
        self, valkey: Valkey, *, replicas: int, timeout: float, metrics: Metrics | None
    ) -> None:
        self.valkey = valkey
        self.keyspace: Keyspace = valkey.keyspace
        self.replicas = replicas
        self.timeout = timeout
        self.metrics = metrics
        self._falling_short = False

    @property
    def enabled(self) -> bool:
        return self.replicas > 0

    async def confirm(self, refs: Iterable[SessionRef]) -> None:
        """Return once ``replicas`` replicas hold every deletion made so far on the primaries
        of ``refs``; raise :class:`SessionNotReplicated` if fewer confirm in time.

        A WAIT covers every earlier write of its primary, which replicates them in one
        ordered stream: standalone, one WAIT; Cluster, one per hash tag (a tag picks the
        slot, hence the primary), concurrently.
        """
        if not self.enabled:
            return
        by_tag = {ref.tag: ref.key(self.keyspace) for ref in refs}
        if not by_tag:
            return
        keys = list(by_tag.values())
        if not self.valkey.is_cluster:
            keys = keys[:1]
        try:
            confirmed = await asyncio.gather(
                *(
                    self.valkey.wait_for_replicas(key, self.replicas, timeout=self.timeout)
                    for key in keys
                )
            )
        except ValkeyError as exc:
            raise SessionStoreUnavailable("the session store is unavailable") from exc
        fewest = min(confirmed)
        if fewest < self.replicas:
            self._report_short(fewest)
            raise SessionNotReplicated(
                f"{fewest} of the {self.replicas} replicas required confirmed the deletion"
            )
        if self._falling_short:
            self._falling_short = False
            logger.info("Replicas confirm session deletions again")

    def _report_short(self, confirmed: int) -> None:
        if self.metrics is not None:
            self.metrics.incr("cachemw_session_events_total", event=DELETION_NOT_REPLICATED)
        if not self._falling_short:
            # Once per change of state, never per request (and never the session id).
            self._falling_short = True
            logger.warning(
                "Session deletions are not confirmed by %d replica(s) within %.3f s (%d did): "
                "logouts answer 503 until replicas catch up (logged once until they do; see "
                "cachemw_session_events_total{event=%r})",
                self.replicas,
                self.timeout,
                confirmed,
                DELETION_NOT_REPLICATED,
            )
