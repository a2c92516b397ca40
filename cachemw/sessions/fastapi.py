"""FastAPI dependencies for sessions (the only module of the feature that imports FastAPI).

```python
@app.post("/cart/{item}")
async def add(item: str, session: SessionDep) -> dict[str, int]:
    cart = session.get("cart", type=list[str]) or []
    session["cart"] = [*cart, item]          # assignment is the unit of change
    return {"items": len(session["cart"])}

@app.get("/me")
async def me(session: Annotated[Session, Depends(require_login)]) -> dict[str, str]:
    return {"user": session.user_id or ""}
```
Use them together with :class:`~cachemw.sessions.SessionMiddleware`; a store outage while
loading becomes the middleware's 503 problem response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from cachemw.sessions.csrf import CSRF_HEADER, SAFE_METHODS, csrf_token_matches
from cachemw.sessions.middleware import load_session
from cachemw.sessions.session import Session

__all__ = [
    "SessionDep",
    "get_session",
    "require_csrf",
    "require_login",
    "require_session",
    "session_value",
]

T = TypeVar("T")

# RFC 9110 §15.5.2: a 401 carries a WWW-Authenticate challenge; the session cookie is ours.
_CHALLENGE = {"WWW-Authenticate": 'Cookie realm="session"'}


async def get_session(connection: HTTPConnection) -> Session:
    """The request's (or websocket's) session, loaded: one Valkey round trip, once."""
    return await load_session(connection)


SessionDep = Annotated[Session, Depends(get_session)]


def session_value(
    name: str, value_type: type[T], *, default: T | None = None
) -> Callable[[Session], Awaitable[T | None]]:
    """A dependency giving one session field decoded as ``value_type`` (msgspec-validated).

    ``cart: Annotated[Cart | None, Depends(session_value("cart", Cart))]``
    """

    async def typed_session_value(session: SessionDep) -> T | None:
        return session.get(name, default, type=value_type)

    return typed_session_value


async def require_session(session: SessionDep) -> Session:
    """401 unless the request carries a live session."""
    if session.is_new:
        raise HTTPException(status_code=401, detail="a session is required", headers=_CHALLENGE)
    return session


async def require_login(session: SessionDep) -> Session:
    """401 unless the session is bound to a user (``session.rotate(user_id=...)``)."""
    if session.is_new or session.user_id is None:
        raise HTTPException(status_code=401, detail="login required", headers=_CHALLENGE)
    return session


async def require_csrf(request: Request, session: SessionDep) -> Session:
    """403 when an unsafe request lacks the session's CSRF token in ``X-CSRF-Token``.

    Add it to a router or app: ``APIRouter(dependencies=[Depends(require_csrf)])``.
    """
    if request.method not in SAFE_METHODS and not csrf_token_matches(
        session, request.headers.get(CSRF_HEADER)
    ):
        raise HTTPException(status_code=403, detail="missing or invalid CSRF token")
    return session
