"""The same small session app twice: once FastAPI, once plain Starlette."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cachemw.sessions import SessionMiddleware, SessionStore, load_session
from cachemw.sessions.fastapi import SessionDep, require_login, require_session, session_value


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    age: int


@dataclass
class Gate:
    """Lets a test hold a request between its session load and its response."""

    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def fastapi_app(store: SessionStore, gate: Gate | None = None) -> FastAPI:
    app = FastAPI()
    gate = gate or Gate()

    @app.get("/public")
    async def public() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read(session: SessionDep) -> dict[str, Any]:
        return {"cart": session.get("cart"), "user": session.user_id, "new": session.is_new}

    @app.post("/cart/{item}")
    async def add(item: str, session: SessionDep) -> dict[str, int]:
        cart = session.get("cart", type=list[str]) or []
        session["cart"] = [*cart, item]
        return {"items": len(cart) + 1}

    @app.post("/set/{name}/{value}")
    async def set_field(name: str, value: str, session: SessionDep) -> dict[str, bool]:
        session[name] = value
        return {"ok": True}

    @app.post("/delete/{name}")
    async def delete_field(name: str, session: SessionDep) -> dict[str, bool]:
        session.pop(name, None)
        return {"ok": True}

    @app.post("/profile")
    async def set_profile(session: SessionDep) -> dict[str, bool]:
        session["profile"] = Profile(name="Ada", age=36)
        return {"ok": True}

    @app.get("/profile")
    async def get_profile(
        profile: Annotated[Profile | None, Depends(session_value("profile", Profile))],
    ) -> dict[str, Any]:
        return {"name": None if profile is None else profile.name}

    @app.post("/login/{user}")
    async def login(user: str, session: SessionDep) -> dict[str, bool]:
        session.rotate(user_id=user)
        return {"ok": True}

    @app.post("/login-as/{user}/{display}")
    async def login_with_profile(user: str, display: str, session: SessionDep) -> dict[str, bool]:
        session["display"] = display
        del session["cart"]
        session.rotate(user_id=user)
        return {"ok": True}

    @app.post("/assign-then-mutate")
    async def assign_then_mutate(session: SessionDep) -> dict[str, bool]:
        cart = ["a"]
        session["cart"] = cart
        cart.append("b")  # not seen: assignment is the unit of change
        return {"ok": True}

    @app.post("/rotate")
    async def rotate(session: SessionDep) -> dict[str, bool]:
        session.rotate()
        return {"ok": True}

    @app.post("/logout")
    async def logout(session: SessionDep) -> dict[str, bool]:
        session.destroy()
        return {"ok": True}

    @app.get("/members")
    async def members(session: Annotated[Any, Depends(require_session)]) -> dict[str, bool]:
        return {"ok": True}

    @app.get("/me")
    async def me(session: Annotated[Any, Depends(require_login)]) -> dict[str, Any]:
        return {"user": session.user_id}

    @app.get("/cacheable")
    async def cacheable(session: SessionDep, response: Response) -> dict[str, bool]:
        response.headers["cache-control"] = "public, max-age=600"
        response.headers["vary"] = "Accept-Encoding"
        if session.get("mark") is None:
            session["mark"] = "x"
        return {"ok": True}

    @app.post("/slow-cart/{item}")
    async def slow_cart(item: str, session: SessionDep) -> dict[str, bool]:
        gate.loaded.set()
        await gate.release.wait()
        session["cart"] = [*(session.get("cart") or []), item]
        return {"ok": True}

    app.add_middleware(SessionMiddleware, store=store)
    return app


def starlette_app(store: SessionStore, gate: Gate | None = None) -> Starlette:
    gate = gate or Gate()

    async def public(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def read(request: Request) -> Response:
        session = await load_session(request)
        return JSONResponse(
            {"cart": session.get("cart"), "user": session.user_id, "new": session.is_new}
        )

    async def add(request: Request) -> Response:
        session = await load_session(request)
        cart = session.get("cart", type=list[str]) or []
        session["cart"] = [*cart, request.path_params["item"]]
        return JSONResponse({"items": len(cart) + 1})

    async def set_field(request: Request) -> Response:
        session = await load_session(request)
        session[request.path_params["name"]] = request.path_params["value"]
        return JSONResponse({"ok": True})

    async def delete_field(request: Request) -> Response:
        session = await load_session(request)
        session.pop(request.path_params["name"], None)
        return JSONResponse({"ok": True})

    async def login(request: Request) -> Response:
        session = await load_session(request)
        session.rotate(user_id=request.path_params["user"])
        return JSONResponse({"ok": True})

    async def logout(request: Request) -> Response:
        (await load_session(request)).destroy()
        return JSONResponse({"ok": True})

    async def slow_cart(request: Request) -> Response:
        session = await load_session(request)
        gate.loaded.set()
        await gate.release.wait()
        session["cart"] = [*(session.get("cart") or []), request.path_params["item"]]
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/public", public),
            Route("/read", read),
            Route("/cart/{item}", add, methods=["POST"]),
            Route("/set/{name}/{value}", set_field, methods=["POST"]),
            Route("/delete/{name}", delete_field, methods=["POST"]),
            Route("/login/{user}", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/slow-cart/{item}", slow_cart, methods=["POST"]),
        ]
    )
    app.add_middleware(SessionMiddleware, store=store)
    return app


BUILDERS = {"fastapi": fastapi_app, "starlette": starlette_app}
