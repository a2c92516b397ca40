"""Login, the user's page, the cart and logout: the session part of the demo.

The session is one Valkey hash; the cart is one field per SKU (``cart:<sku>``), so two
requests adding different items at the same time both keep their change.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from cachemw.headers.fastapi import cache_policy
from cachemw.sessions import Session, SessionStore
from cachemw.sessions.fastapi import SessionDep, require_login, require_session
from demo_app.db import ShopDatabase

__all__ = ["CART_PREFIX", "account_router", "cart_of"]

CART_PREFIX = "cart:"
MAX_QUANTITY = 999

LoggedIn = Annotated[Session, Depends(require_login)]
WithSession = Annotated[Session, Depends(require_session)]


class LoginRequest(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")


class CartItem(BaseModel):
    sku: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    qty: int = Field(ge=1, le=MAX_QUANTITY)


def cart_of(session: Session) -> dict[str, int]:
    return {
        name[len(CART_PREFIX) :]: int(session[name])
        for name in session
        if name.startswith(CART_PREFIX)
    }


def account_router(db: ShopDatabase, store: SessionStore) -> APIRouter:
    router = APIRouter()

    @router.post("/login")
    async def login(body: LoginRequest, session: SessionDep) -> dict[str, Any]:
        # OWASP: a new session id at every privilege change, so a planted id is worthless.
        session.rotate(user_id=body.username)
        session["username"] = body.username
        logins = await db.record_login(body.username, now=time.time())
        return {"username": body.username, "logins": logins}

    # Private to the user; the session middleware adds Vary: Cookie since it read the session.
    @router.get("/me", dependencies=[cache_policy(private=True, no_cache=True)])
    async def me(session: LoggedIn) -> dict[str, Any]:
        return {"username": session.get("username", type=str), "cart": cart_of(session)}

    @router.post("/cart/items")
    async def add_to_cart(item: CartItem, session: WithSession) -> dict[str, Any]:
        field = CART_PREFIX + item.sku
        quantity = min(MAX_QUANTITY, (session.get(field, type=int) or 0) + item.qty)
        session[field] = quantity  # one HSET of this field at response time
        return {"sku": item.sku, "qty": quantity, "cart": cart_of(session)}

    @router.post("/logout")
    async def logout(session: SessionDep) -> dict[str, bool]:
        session.destroy()
        return {"logged_out": True}

    @router.post("/logout-everywhere")
    async def logout_everywhere(session: LoggedIn) -> dict[str, int]:
        user_id = session.user_id
        assert user_id is not None
        revoked = await store.revoke_user_sessions(user_id)
        session.destroy()
        return {"revoked": revoked}

    return router
