"""Every Valkey operation of the sessions feature; nothing else in it talks to Valkey.

Layout (all keys under the Valkey layer's prefix)::

    {prefix}:sess:{family-tag}:{id-digest}   HASH  one session
        @c created (ms)  @a absolute expiry (ms)  @g generation  @b user bytes  @u user id
        <name> -> msgpack value, one field per user value
    {prefix}:sessu:{user-digest}             ZSET  a user's sessions, scored by absolute expiry

Cluster: a session and its rotated successor share the id family's hash tag, so a rotation
is one atomic script. A user's index lives on the user's tag, so touching it is a separate,
idempotent step: on login the index entry is added *before* the session is bound (so "log
out everywhere" can never miss a bound session), on logout it is removed *after* the delete.
An entry whose session is gone is pruned by its score (absolute expiry), by
:meth:`list_user_sessions` and by :meth:`revoke_user_sessions`; entries younger than
``INDEX_GRACE_MS`` are kept even when their session does not exist yet, since a login may be
between its two steps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cachemw.metrics import Metrics
from cachemw.sessions.config import SessionConfig
from cachemw.sessions.errors import SessionStoreUnavailable
from cachemw.sessions.ids import SessionRef
from cachemw.sessions.replication import DeletionReplication
from cachemw.valkey import Script, Valkey, ValkeyCommandError, ValkeyError

__all__ = ["CommitOutcome", "CommitResult", "LoadedSession", "SessionInfo", "SessionStore"]

logger = logging.getLogger("cachemw.sessions")

INDEX_FEATURE = "sessu"
INDEX_GRACE_MS = 60_000
_LOAD = Script("session_load")
_COMMIT = Script("session_commit")
_INDEX_ADD = Script("session_index_add")


@dataclass(frozen=True, slots=True)
class LoadedSession:
    """A session hash as Valkey returned it (values still msgpack-encoded)."""

    expires_at_ms: int
    fields: dict[bytes, bytes]


class CommitOutcome:
    WRITTEN = 1
    GONE = 0  # logged out, rotated or expired meanwhile: the write was dropped
    TOO_LARGE = -1
    COLLISION = -2


@dataclass(frozen=True, slots=True)
class CommitResult:
    outcome: int
    generation: int = 0
    expires_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One of a user's live sessions, as :meth:`SessionStore.list_user_sessions` reports it."""

    handle: str
    created_at: float
    expires_at: float
    absolute_expires_at: float


class SessionStore:
    """The sessions feature's storage on a :class:`Valkey` client.

    Apps use it for "log out everywhere" and "your devices"; the middleware for the rest.
    """

    __slots__ = (
        "_idle_ms",
        "_logged",
        "_throttle_ms",
        "config",
        "deletion_replication",
        "keyspace",
        "metrics",
        "timeout",
        "valkey",
    )

    def __init__(
        self, valkey: Valkey, config: SessionConfig | None = None, *, metrics: Metrics | None = None
    ) -> None:
        self.valkey = valkey
        valkey.holds_state("sessions")
        self.config = config or SessionConfig()
        # Sessions fail closed: never less patient than 250 ms (see SessionConfig).
        self.timeout = (
            self.config.store_timeout
            if self.config.store_timeout is not None
            else max(0.25, valkey.settings.command_timeout)
        )
        self.keyspace = valkey.keyspace
        self.metrics = metrics
        if metrics is not None:
            metrics.describe(
                "cachemw_session_events_total",
                "Session events: write_dropped, corrupt_session, index_cleanup_failed, "
                "deletion_not_replicated",
            )
        self._logged: set[str] = set()
        self.deletion_replication = DeletionReplication(
            valkey, replicas=self.config.logout_replicas, timeout=self.timeout, metrics=metrics
        )
        # Script arguments computed once, not per request.
        self._idle_ms = self.config.idle_ms
        self._throttle_ms = self.config.refresh_throttle_ms

    # -- observations (metrics always, a log line once per kind per store) -----------------

    def report_event(self, event: str, message: str) -> None:
        if self.metrics is not None:
            self.metrics.incr("cachemw_session_events_total", event=event)
        if event not in self._logged:
            self._logged.add(event)
            logger.warning("%s (logged once; see cachemw_session_events_total)", message)

    # -- one session ----------------------------------------------------------------------

    def key(self, ref: SessionRef) -> str:
        return ref.key(self.keyspace)

    async def load(self, ref: SessionRef) -> LoadedSession | None:
        """The session, sliding its idle expiry (one EVALSHA: HGETALL + throttled PEXPIREAT).

        ``None`` when there is no live session. A key of the wrong type (not ours) is
        reported as corrupt by returning an empty hash.
        """
        try:
            reply = await self.valkey.run_script(
                _LOAD,
                keys=[self.key(ref)],
                args=(self._idle_ms, self._throttle_ms),
                idempotent=True,  # the refresh only ever moves the expiry forward
                timeout=self.timeout,
            )
        except ValkeyCommandError as exc:
            if str(exc).startswith("WRONGTYPE"):
                return LoadedSession(0, {})
            raise SessionStoreUnavailable("the session store answered with an error") from exc
        except ValkeyError as exc:
            raise SessionStoreUnavailable("the session store is unavailable") from exc
        if reply is None:
            return None
        expires, flat = reply
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        return LoadedSession(int(expires), fields)

    async def commit(
        self,
        *,
        mode: str,
        ref: SessionRef,
        new_ref: SessionRef | None = None,
        generation: int | None = None,
        absolute_at_ms: int | None = None,
        user_action: str = "",
        user_id: str = "",
        set_fields: Sequence[tuple[bytes, bytes]] = (),
        deleted_fields: Sequence[bytes] = (),
    ) -> CommitResult:
        """Create, update or rotate one session (one EVALSHA, atomic and conditional on the
        loaded generation). A rotation deletes the old id: with ``logout_replicas`` it is
        confirmed like :meth:`delete` (raising :class:`SessionNotReplicated`)."""
        config = self.config
        keys = [self.key(ref)] if new_ref is None else [self.key(ref), self.key(new_ref)]
        args: list[str | bytes | int] = [
            mode,
            "" if generation is None else generation,
            self._idle_ms,
            self._throttle_ms,
            config.absolute_ms,
            "" if absolute_at_ms is None else absolute_at_ms,
            config.max_session_bytes,
            user_action,
            user_id,
            len(set_fields),
        ]
        for name, value in set_fields:
            args.append(name)
            args.append(value)
        args.extend(deleted_fields)
        try:
            reply = await self.valkey.run_script(
                _COMMIT, keys=keys, args=args, idempotent=False, timeout=self.timeout
            )
        except ValkeyError as exc:
            raise SessionStoreUnavailable("the session store is unavailable") from exc
        if reply[0] != CommitOutcome.WRITTEN:
            return CommitResult(int(reply[0]))
        if new_ref is not None:
            await self.deletion_replication.confirm([ref])
        return CommitResult(CommitOutcome.WRITTEN, int(reply[1]), int(reply[2]))

    async def delete(self, ref: SessionRef) -> None:
        """Server-side logout (one DEL, plus one WAIT with ``logout_replicas``). Idempotent.

        Raises :class:`SessionNotReplicated` when too few replicas confirm it in time.
        """
        try:
            await self.valkey.execute("DEL", self.key(ref), timeout=self.timeout)
        except ValkeyError as exc:
            raise SessionStoreUnavailable("the session store is unavailable") from exc
        await self.deletion_replication.confirm([ref])

    # -- the per-user index ---------------------------------------------------------------

    def index_key(self, user_id: str) -> str:
        return self.keyspace.key_for(INDEX_FEATURE, user_id.encode("utf-8", "surrogatepass"))

    async def index_add(self, user_id: str, ref: SessionRef, absolute_at_ms: int | None) -> int:
        """Record ``ref`` under ``user_id``; returns the absolute expiry used (one EVALSHA)."""
        config = self.config
        try:
            reply = await self.valkey.run_script(
                _INDEX_ADD,
                keys=[self.index_key(user_id)],
                args=[
                    ref.handle,
                    "" if absolute_at_ms is None else absolute_at_ms,
                    config.absolute_ms,
                ],
                idempotent=True,
                timeout=self.timeout,
            )
        except ValkeyError as exc:
            raise SessionStoreUnavailable("the session store is unavailable") from exc
        return int(reply[0])

    async def index_remove(self, user_id: str, ref: SessionRef) -> None:
        """Best effort: a failure leaves an entry that the pruning rules remove later."""
        try:
            members = await self._index_members(user_id)
            doomed = [m for m in members if _member_ref(m) == ref]
            if doomed:
                await self.valkey.execute(
                    "ZREM", self.index_key(user_id), *doomed, timeout=self.timeout
                )
        except ValkeyError:
            self.report_event(
                "index_cleanup_failed", "could not remove a session from its user index"
            )

    async def _index_members(self, user_id: str) -> list[bytes]:
        members: list[bytes] = await self.valkey.execute(
            "ZRANGE", self.index_key(user_id), 0, -1, timeout=self.timeout
        )
        return members

    async def list_user_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions, oldest first; prunes entries whose session is gone.

        One ZRANGE, then one pipelined HMGET+PEXPIRETIME per session (each on its own slot).
        """
        try:
            members = await self._index_members(user_id)
            replies = await asyncio.gather(*(self._describe(m) for m in members))
        except ValkeyError as exc:
            raise SessionStoreUnavailable("the session store is unavailable") from exc
        now_ms = int(time.time() * 1000)
        infos: list[SessionInfo] = []
        dead: list[bytes] = []
        expected_user = user_id.encode("utf-8", "surrogatepass")
        for member, reply in zip(members, replies, strict=True):
            ref = _member_ref(member)
            if ref is not None and reply is not None and reply[0][2] == expected_user:
                (created, absolute, _user), expires = reply
                infos.append(
                    SessionInfo(
                        handle=ref.handle,
                        created_at=int(created) / 1000,
                        expires_at=int(expires) / 1000,
                        absolute_expires_at=int(absolute) / 1000,
                    )
                )
            elif ref is None or _member_added_ms(member) + INDEX_GRACE_MS < now_ms:
                dead.append(member)
        await self._prune(user_id, dead)
        infos.sort(key=lambda info: info.created_at)
        return infos

    async def _describe(self, member: bytes) -> tuple[list[Any], int] | None:
        ref = _member_ref(member)
        if ref is None:
            return None
        key = self.key(ref)
        meta, expires = await self.valkey.pipeline(
            [("HMGET", key, "@c", "@a", "@u"), ("PEXPIRETIME", key)],
            idempotent=True,
            timeout=self.timeout,
        )
        if meta[0] is None or meta[1] is None:
            return None
        return meta, int(expires)

    async def revoke_session(self, user_id: str, handle: str) -> bool:
        """Log out one of the user's sessions by its handle; False if it is not theirs.

        Raises :class:`SessionNotReplicated` when ``logout_replicas`` replicas do not confirm
        the deletion in time.
        """
        try:
            wanted = SessionRef.from_handle(handle)
            members = await self._index_members(user_id) if wanted is not None else []
            chosen = [m for m in members if _member_ref(m) == wanted]
            if not chosen:
                return False
            ref = _member_ref(chosen[0])
            assert ref is not None
            deleted = await self.valkey.execute("DEL", self.key(ref), timeout=self.timeout)
            # Confirmed before the index forgets it: a retry must still find the session.
            await self.deletion_replication.confirm([ref])
            await self.valkey.execute(
                "ZREM", self.index_key(user_id), *chosen, timeout=self.timeout
            )
        except ValkeyError as exc:
            raise SessionStoreUnavailable("the session store is unavailable") from exc
        return bool(deleted)

    async def revoke_user_sessions(self, user_id: str) -> int:
        """ "Log out everywhere": deletes every session bound to ``user_id``; returns how many.

        Entries whose session does not exist and were added within ``INDEX_GRACE_MS`` stay:
        they may belong to a login between its two steps, which must stay revocable. Raises
        :class:`SessionNotReplicated` when ``logout_replicas`` replicas do not confirm the
        deletions in time (the index is kept, so a retry deletes and confirms again).
        """
        timeout = self.timeout
        try:
            members = await self._index_members(user_id)
            refs = [_member_ref(m) for m in members]
            keys = [self.key(ref) for ref in refs if ref is not None]
            results: list[Any] = []
            if not keys:
                pass
            elif self.valkey.is_cluster:
                results = await asyncio.gather(
                    *(self.valkey.execute("DEL", key, timeout=timeout) for key in keys)
                )
            else:
                results = await self.valkey.pipeline(
                    [("DEL", key) for key in keys], idempotent=True, timeout=timeout
                )
        except ValkeyError as exc:
            raise SessionStoreUnavailable("the session store is unavailable") from exc
        # Confirmed before the index is pruned: a retry must still find every session.
        await self.deletion_replication.confirm(ref for ref in refs if ref is not None)
        now_ms = int(time.time() * 1000)
        done = iter(results)
        removable: list[bytes] = []
        deleted = 0
        for member, ref in zip(members, refs, strict=True):
            existed = ref is not None and bool(next(done))
            deleted += existed
            if existed or ref is None or _member_added_ms(member) + INDEX_GRACE_MS < now_ms:
                removable.append(member)
        await self._prune(user_id, removable)
        return deleted

    async def _prune(self, user_id: str, members: list[bytes]) -> None:
        if not members:
            return
        try:
            await self.valkey.execute(
                "ZREM", self.index_key(user_id), *members, timeout=self.timeout
            )
        except ValkeyError:
            self.report_event("index_cleanup_failed", "could not prune a user's session index")


def _member_ref(member: bytes) -> SessionRef | None:
    return SessionRef.from_handle(member.rpartition(b":")[0])


def _member_added_ms(member: bytes) -> int:
    added = member.rpartition(b":")[2]
    return int(added) if added.isdigit() else 0
