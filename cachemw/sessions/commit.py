"""Response-time commit: turn one request's session changes into Valkey writes and the
headers the response needs. Called by the middleware just before ``http.response.start``.

Round trips: an update is one EVALSHA; a create or rotation is one EVALSHA, plus one to the
user's index when a user is bound (index first, see :mod:`cachemw.sessions.store`); a logout
is one DEL, plus one index clean-up for a bound session. With ``logout_replicas`` a logout
and a rotation cost one more round trip each (WAIT, see :mod:`cachemw.sessions.replication`).
"""

from __future__ import annotations

from dataclasses import dataclass

from cachemw.sessions import session as states
from cachemw.sessions.errors import SessionStoreUnavailable, SessionTooLarge
from cachemw.sessions.ids import new_session_id, rotated_session_id, session_ref
from cachemw.sessions.session import Session
from cachemw.sessions.store import CommitOutcome, CommitResult

__all__ = ["ResponseEffects", "commit_session"]

_ATTEMPTS = 2  # a fresh 384-bit id colliding even once is astronomically unlikely


@dataclass(frozen=True, slots=True)
class ResponseEffects:
    """What the response must carry after the commit."""

    set_cookie: bytes | None = None
    no_store: bool = False
    clear_site_data: bool = False


_NOTHING = ResponseEffects()


def _raise_if_too_large(result: CommitResult) -> None:
    if result.outcome == CommitOutcome.TOO_LARGE:
        raise SessionTooLarge("concurrent writes would take the session past max_session_bytes")


async def commit_session(session: Session) -> ResponseEffects:
    """Write what changed. Freezes the session first: no change can slip in meanwhile."""
    if session._state != states.LOADED:
        return _NOTHING
    session._state = states.DONE
    if session._destroyed:
        return await _destroy(session)
    if session._session_id is None:
        return await _create(session)
    if session._rotate_requested:
        return await _rotate(session)
    if session._set_fields or session._deleted:
        return await _update(session)
    return _NOTHING


async def _destroy(session: Session) -> ResponseEffects:
    store = session._context.store
    codec = session._context.codec
    if session._ref is not None:
        await store.delete(session._ref)
        if session._loaded_user_id is not None:
            await store.index_remove(session._loaded_user_id, session._ref)
    return ResponseEffects(
        set_cookie=codec.clear_cookie if session._cookie_present else None,
        no_store=True,
        clear_site_data=True,
    )


async def _create(session: Session) -> ResponseEffects:
    store = session._context.store
    codec = session._context.codec
    if session._is_corrupt and session._ref is not None:
        await store.delete(session._ref)
    user_id = session._user_id_value
    if not session._set_fields and user_id is None:
        # Nothing to keep: no key, no cookie. A stale or forged cookie is cleared so the
        # client stops sending it.
        if session._cookie_present:
            return ResponseEffects(set_cookie=codec.clear_cookie, no_store=True)
        return _NOTHING
    fields = list(session._set_fields.items())
    for _ in range(_ATTEMPTS):
        session_id = new_session_id()
        ref = session_ref(session_id)
        absolute_at_ms = None
        if user_id is not None:
            absolute_at_ms = await store.index_add(user_id, ref, None)
        result = await store.commit(
            mode="create",
            ref=ref,
            absolute_at_ms=absolute_at_ms,
            user_action="" if user_id is None else "set",
            user_id=user_id or "",
            set_fields=fields,
        )
        _raise_if_too_large(result)
        if result.outcome == CommitOutcome.WRITTEN:
            return ResponseEffects(set_cookie=codec.set_cookie(session_id), no_store=True)
    raise SessionStoreUnavailable("could not allocate a session id")


async def _rotate(session: Session) -> ResponseEffects:
    store = session._context.store
    codec = session._context.codec
    assert session._session_id is not None
    assert session._ref is not None
    new_id = rotated_session_id(session._session_id)
    new_ref = session_ref(new_id)
    user_id = session._user_id_value
    if user_id is not None:
        # Index first: "log out everywhere" must be able to find every bound session.
        await store.index_add(user_id, new_ref, session._absolute_at_ms)
    result = await store.commit(
        mode="rotate",
        ref=session._ref,
        new_ref=new_ref,
        generation=session._generation,
        user_action=session._user_action,
        user_id=user_id or "",
        set_fields=list(session._set_fields.items()),
        deleted_fields=list(session._deleted),
    )
    _raise_if_too_large(result)
    if result.outcome != CommitOutcome.WRITTEN:
        store.report_event(
            "write_dropped", "a session rotation raced a logout or rotation; dropped"
        )
        if user_id is not None:
            await store.index_remove(user_id, new_ref)
        return _NOTHING
    if session._loaded_user_id is not None:
        await store.index_remove(session._loaded_user_id, session._ref)
    return ResponseEffects(set_cookie=codec.set_cookie(new_id), no_store=True)


async def _update(session: Session) -> ResponseEffects:
    store = session._context.store
    assert session._ref is not None
    result = await store.commit(
        mode="update",
        ref=session._ref,
        generation=session._generation,
        set_fields=list(session._set_fields.items()),
        deleted_fields=list(session._deleted),
    )
    _raise_if_too_large(result)
    if result.outcome != CommitOutcome.WRITTEN:
        store.report_event("write_dropped", "a session write raced a logout or rotation; dropped")
    return _NOTHING
