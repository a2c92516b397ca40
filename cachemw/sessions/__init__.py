"""Hash-based server-side sessions on Valkey: one HASH per session, one field per value.

FastAPI::

    store = SessionStore(valkey, SessionConfig(idle_timeout=1800, absolute_lifetime=8 * 3600))
    app.add_middleware(SessionMiddleware, store=store)

    @app.post("/cart/{sku}")
    async def add(sku: str, session: SessionDep) -> dict[str, int]:   # cachemw.sessions.fastapi
        cart = session.get("cart", type=list[str]) or []
        session["cart"] = [*cart, sku]          # assignment is the unit of change
        return {"items": len(cart) + 1}

Plain Starlette: the middleware puts the (not yet loaded) session in ``scope["session"]``
(so ``request.session``); ``session = await load_session(request)`` loads it.

Rules worth knowing:

* Lazy: only a request that loads the session costs a Valkey round trip (one EVALSHA that
  also slides the idle expiry); a changed session costs one more at response start, with
  only the changed fields. Requests that never load it are not touched at all.
* Values are msgspec msgpack, encoded on assignment: mutate-in-place is not saved.
* ``session.rotate(user_id=...)`` on login, ``session.destroy()`` on logout;
  ``store.revoke_user_sessions(user_id)`` / ``store.list_user_sessions(user_id)`` use a
  per-user index, never SCAN.
* Fails closed: a store outage on a route that loads the session answers 503
  ``application/problem+json`` with ``Retry-After``; other routes are unaffected.
* ``SessionConfig(logout_replicas=1)``: a logout is acknowledged only once a replica holds
  it (``WAIT``), so a failover cannot bring the session back; otherwise 503.
* WebSocket scopes pass through without a session.
"""

from cachemw.sessions.config import SessionConfig, SessionCookie
from cachemw.sessions.errors import (
    SessionDataError,
    SessionError,
    SessionNotLoaded,
    SessionNotReplicated,
    SessionStoreUnavailable,
    SessionTooLarge,
)
from cachemw.sessions.middleware import SessionMiddleware, load_session, session_from_scope
from cachemw.sessions.session import Session
from cachemw.sessions.store import SessionInfo, SessionStore

__all__ = [
    "Session",
    "SessionConfig",
    "SessionCookie",
    "SessionDataError",
    "SessionError",
    "SessionInfo",
    "SessionMiddleware",
    "SessionNotLoaded",
    "SessionNotReplicated",
    "SessionStore",
    "SessionStoreUnavailable",
    "SessionTooLarge",
    "load_session",
    "session_from_scope",
]
