"""``SessionMiddleware``: pure ASGI, wraps ``send`` and commits the session at response start.

A request whose app never loads the session passes straight through: no cookie parsing, no
Valkey command, no header change. Otherwise, just before ``http.response.start`` the changed
fields are written (see :mod:`cachemw.sessions.commit`) and the response gets:

* ``Vary: Cookie`` (RFC 9110 §12.5.5): its content depended on the session cookie;
* ``Cache-Control: no-store`` whenever it sets or clears the cookie (RFC 9111 §5.2.2.5;
  OWASP), replacing whatever the app said, so no cache ever stores a session cookie;
* on store trouble, ``503`` ``application/problem+json`` (RFC 9457) with ``Retry-After``
  instead of a response built on a session that could not be read or saved. A logout or
  rotation the primary ran but too few replicas confirmed (``logout_replicas``) also
  answers 503, and still clears the cookie: the primary no longer has that session.

Websockets get a session too; their handshake's ``websocket.accept`` plays the response
start (see :meth:`SessionMiddleware._websocket`). A session first loaded after the response
started (a background task, a websocket handler after ``accept``) is read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cachemw.http.vary import merge_vary
from cachemw.sessions import session as states
from cachemw.sessions.commit import ResponseEffects, commit_session
from cachemw.sessions.errors import (
    SessionError,
    SessionNotReplicated,
    SessionStoreUnavailable,
    SessionTooLarge,
)
from cachemw.sessions.session import Session, SessionContext
from cachemw.sessions.store import SessionStore

__all__ = ["SCOPE_KEY", "SessionMiddleware", "load_session", "session_from_scope"]

SCOPE_KEY = "session"

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Any
Send = Any
Receive = Any

_UNAVAILABLE_BODY = (
    b'{"type":"about:blank","title":"Service Unavailable","status":503,'
    b'"detail":"The session store is unavailable. Please retry shortly."}'
)
_TOO_LARGE_BODY = (
    b'{"type":"about:blank","title":"Content Too Large","status":413,'
    b'"detail":"The session would exceed its size limit."}'
)
_NO_STORE = (b"cache-control", b"no-store")
_WS_TRY_AGAIN_LATER = 1013  # RFC 6455 §7.4.1 registry: "Try Again Later"
_VARY_COOKIE = ("Cookie",)
_VARY_COOKIE_HEADER = (b"vary", b"Cookie")


def _problem(status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> tuple[Message, Message]:
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode("ascii")),
        _NO_STORE,
        (b"vary", b"Cookie"),
        *extra,
    ]
    return (
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body, "more_body": False},
    )


class SessionMiddleware:
    """``app.add_middleware(SessionMiddleware, store=SessionStore(valkey, SessionConfig()))``.

    The app reaches the session as ``scope["session"]`` (Starlette: ``request.session``)
    and must ``await load_session(request)`` (or use :mod:`cachemw.sessions.fastapi`) first.
    """

    def __init__(self, app: ASGIApp, *, store: SessionStore) -> None:
        if not isinstance(store, SessionStore):
            raise ValueError(f"store must be a SessionStore, got {type(store).__name__}")
        self.app = app
        self._context = SessionContext(store)
        config = store.config
        self._unavailable = _problem(
            503, _UNAVAILABLE_BODY, [(b"retry-after", str(config.retry_after).encode("ascii"))]
        )
        self._too_large = _problem(413, _TOO_LARGE_BODY, [])
        self._clear_site_data = (
            (b"clear-site-data", ", ".join(f'"{d}"' for d in config.clear_site_data).encode())
            if config.clear_site_data
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
            return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        session = Session(self._context, scope["headers"])
        scope[SCOPE_KEY] = session
        responder = _Responder(self, session, send)
        try:
            await self.app(scope, receive, responder.send)
        except SessionError as exc:
            if responder.replaced and isinstance(exc, SessionStoreUnavailable):
                return  # already answered 503 in place of the app's error page
            if responder.started or not isinstance(exc, SessionStoreUnavailable | SessionTooLarge):
                raise
            await responder.send_problem(exc)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A websocket's handshake is its one response: what the handler wrote before
        ``accept`` is committed then (a new cookie rides on the accept); a store failure
        refuses the handshake with close code 1013 (try again later). After the accept the
        session is read-only: nothing could carry a change back."""
        session = Session(self._context, scope["headers"])
        scope[SCOPE_KEY] = session

        async def send_with_session(message: Message) -> None:
            if message["type"] != "websocket.accept":
                await send(message)
                return
            state = session._state
            if state == states.UNTOUCHED:
                session._state = states.LATE
                await send(message)
                return
            try:
                if state == states.FAILED:
                    raise SessionStoreUnavailable("session store unavailable")
                effects = await commit_session(session)
            except (SessionStoreUnavailable, SessionTooLarge):
                await send({"type": "websocket.close", "code": _WS_TRY_AGAIN_LATER})
                return
            if effects.set_cookie is not None:
                headers = [*message.get("headers", ()), (b"set-cookie", effects.set_cookie)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_session)
        except SessionStoreUnavailable:
            # Raised by the handler's own load before it accepted: refuse the handshake.
            if session._state == states.FAILED:
                await send({"type": "websocket.close", "code": _WS_TRY_AGAIN_LATER})
                return
            raise

    def response_headers(
        self, headers: list[tuple[bytes, bytes]], effects: ResponseEffects
    ) -> list[tuple[bytes, bytes]]:
        """The app's headers plus what a response that read the session must carry."""
        vary_values = [value for name, value in headers if name == b"vary"]
        if vary_values:
            out = [(n, v) for n, v in headers if n != b"vary"]
            merged = merge_vary(vary_values, _VARY_COOKIE)
            if merged is not None:
                out.append((b"vary", merged))
        else:
            out = headers  # a fresh list the caller made from the app's headers
            out.append(_VARY_COOKIE_HEADER)
        if effects.no_store:
            out = [(n, v) for n, v in out if n != b"cache-control"]
            out.append(_NO_STORE)
        if effects.set_cookie is not None:
            out.append((b"set-cookie", effects.set_cookie))
        if effects.clear_site_data and self._clear_site_data is not None:
            out.append(self._clear_site_data)
        return out


class _Responder:
    """Per-request state of the middleware (never stored on the middleware itself)."""

    __slots__ = ("downstream", "middleware", "replaced", "session", "started")

    def __init__(self, middleware: SessionMiddleware, session: Session, send: Send) -> None:
        self.middleware = middleware
        self.session = session
        self.downstream = send
        self.started = False
        self.replaced = False

    async def send(self, message: Message) -> None:
        if self.replaced:
            return  # the app's own response was replaced by a problem response
        if message["type"] != "http.response.start":
            await self.downstream(message)
            return
        session = self.session
        if session._state == states.FAILED:
            # The store failed while the app used the session; an app wrapped from outside
            # (its own ServerErrorMiddleware) would otherwise send a 500. Fail closed: 503.
            await self.send_problem(SessionStoreUnavailable("session store unavailable"))
            self.replaced = True
            return
        if session._state == states.UNTOUCHED:
            session._state = states.LATE  # a load after this point could never be saved
            self.started = True
            await self.downstream(message)
            return
        try:
            effects = await commit_session(session)
        except (SessionStoreUnavailable, SessionTooLarge) as exc:
            # Only this request's own deletion clears its cookie (never a revoke_* call the
            # app made for other sessions, which reaches __call__ instead).
            clear = isinstance(exc, SessionNotReplicated) and session._cookie_present
            await self.send_problem(exc, clear_cookie=clear)
            self.replaced = True
            return
        self.started = True
        headers = self.middleware.response_headers(list(message["headers"]), effects)
        await self.downstream({**message, "headers": headers})

    async def send_problem(self, exc: SessionError, *, clear_cookie: bool = False) -> None:
        middleware = self.middleware
        start, body = (
            middleware._too_large if isinstance(exc, SessionTooLarge) else middleware._unavailable
        )
        if clear_cookie:
            clear = (b"set-cookie", middleware._context.codec.clear_cookie)
            start = {**start, "headers": [*start["headers"], clear]}
        self.started = True
        await self.downstream(start)
        await self.downstream(body)


def session_from_scope(scope: Mapping[str, Any]) -> Session:
    """The request's :class:`Session` (not loaded yet); errors if the middleware is missing."""
    session = scope.get(SCOPE_KEY)
    if not isinstance(session, Session):
        raise RuntimeError("SessionMiddleware is not installed on this app")
    return session


async def load_session(connection: Any) -> Session:
    """``session = await load_session(request)`` in plain Starlette (or pass the scope)."""
    scope = getattr(connection, "scope", connection)
    return await session_from_scope(scope).load()
