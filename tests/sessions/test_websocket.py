"""Sessions on websockets: the handshake's ``accept`` is the websocket's one response.

Starlette's TestClient runs the app (and its Valkey client, through the lifespan) on an event
loop of its own, as a server would; the Valkey is real.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from cachemw.sessions import (
    SessionConfig,
    SessionCookie,
    SessionMiddleware,
    SessionStore,
    load_session,
)
from cachemw.sessions.errors import SessionNotLoaded
from cachemw.sessions.fastapi import SessionDep
from cachemw.valkey import Valkey
from cachemw.valkey.embedded import EmbeddedValkey
from tests.conftest import make_settings

COOKIE = "sid"
TRY_AGAIN_LATER = 1013


def chat_app(valkey: Valkey) -> FastAPI:
    store = SessionStore(valkey, SessionConfig(cookie=SessionCookie(name=COOKIE, secure=False)))
    app = FastAPI(lifespan=valkey.lifespan)
    app.add_middleware(SessionMiddleware, store=store)

    @app.post("/login/{name}")
    async def login(name: str, session: SessionDep) -> dict[str, bool]:
        session["name"] = name
        return {"ok": True}

    @app.websocket("/hello")
    async def hello(websocket: WebSocket, session: SessionDep) -> None:
        await websocket.accept()
        await websocket.send_json({"name": session.get("name"), "new": session.is_new})
        await websocket.close()

    @app.websocket("/join")
    async def join(websocket: WebSocket) -> None:
        session = await load_session(websocket)
        session["joined"] = True  # before accept: committed with the handshake
        await websocket.accept()
        await websocket.send_json({"joined": session.get("joined")})
        await websocket.close()

    @app.websocket("/late-write")
    async def late_write(websocket: WebSocket) -> None:
        await websocket.accept()
        session = await load_session(websocket)
        try:
            session["late"] = True
        except SessionNotLoaded as exc:
            await websocket.send_json({"refused": str(exc)})
        else:
            await websocket.send_json({"refused": None})
        await websocket.close()

    return app


@contextmanager
def serving(url: str) -> Iterator[TestClient]:
    valkey = Valkey(make_settings(url))
    with TestClient(chat_app(valkey), base_url="http://testserver") as client:
        yield client


def login(client: TestClient, name: str) -> str:
    response = client.post(f"/login/{name}")
    assert response.status_code == 200
    sid = response.cookies.get(COOKIE)
    assert sid
    client.cookies.clear()  # every request below sends exactly the cookie the test gives
    return f"{COOKIE}={sid}"


def test_websocket_handler_reads_the_session_of_its_cookie(valkey_url: str) -> None:
    with serving(valkey_url) as client:
        cookie = login(client, "ada")
        with client.websocket_connect("/hello", headers={"cookie": cookie}) as ws:
            assert ws.receive_json() == {"name": "ada", "new": False}


def test_websocket_without_a_cookie_gets_an_empty_new_session(valkey_url: str) -> None:
    with serving(valkey_url) as client, client.websocket_connect("/hello") as ws:
        assert ws.receive_json() == {"name": None, "new": True}


def test_forged_cookie_on_a_websocket_is_never_adopted(valkey_url: str) -> None:
    forged = f"{COOKIE}={'A' * 64}"
    with (
        serving(valkey_url) as client,
        client.websocket_connect("/hello", headers={"cookie": forged}) as ws,
    ):
        assert ws.receive_json() == {"name": None, "new": True}


def test_write_before_accept_is_saved_and_its_cookie_rides_on_the_handshake(
    valkey_url: str,
) -> None:
    with serving(valkey_url) as client:
        with client.websocket_connect("/join") as ws:
            assert ws.receive_json() == {"joined": True}
            handshake: list[tuple[bytes, bytes]] = ws.extra_headers or []
        cookies = [v.decode() for n, v in handshake if n == b"set-cookie"]
        assert len(cookies) == 1
        assert cookies[0].startswith(f"{COOKIE}=")
        cookie = cookies[0].split(";", 1)[0]
        with client.websocket_connect("/join", headers={"cookie": cookie}) as ws:
            assert ws.receive_json() == {"joined": True}
            again: list[tuple[bytes, bytes]] = ws.extra_headers or []
        assert not [v for n, v in again if n == b"set-cookie"]  # same session: no new cookie


def test_write_after_accept_is_refused_not_silently_lost(valkey_url: str) -> None:
    with serving(valkey_url) as client:
        cookie = login(client, "ada")
        with client.websocket_connect("/late-write", headers={"cookie": cookie}) as ws:
            refused: Any = ws.receive_json()["refused"]
        assert refused is not None
        assert "can no longer change" in refused
        with client.websocket_connect("/hello", headers={"cookie": cookie}) as ws:
            assert ws.receive_json() == {"name": "ada", "new": False}


def test_store_down_refuses_the_handshake_with_try_again_later(
    private_server: EmbeddedValkey,
) -> None:
    with serving(private_server.url) as client:
        cookie = login(client, "ada")
        private_server.stop()
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/hello", headers={"cookie": cookie}) as ws,
        ):
            ws.receive_json()
        assert refused.value.code == TRY_AGAIN_LATER
