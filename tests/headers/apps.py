"""Small Starlette apps and a raw ASGI harness for the HeadersMiddleware tests."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Scope

from cachemw.headers import HeadersMiddleware

ITEM = {"id": 1, "name": "widget", "tags": ["a", "b"]}
LAST_MODIFIED = "Sun, 06 Nov 1994 08:49:37 GMT"
BIG_BODY = b"x" * 4096


async def json_item(request: Request) -> Response:
    return JSONResponse(ITEM)


async def app_etag(request: Request) -> Response:
    return JSONResponse(ITEM, headers={"ETag": '"app-v1"'})


async def gzip_with_app_etag(request: Request) -> Response:
    body = gzip.compress(b'{"id": 1}', mtime=0)
    headers = {"ETag": '"app-v1"', "Content-Encoding": "gzip"}
    return Response(body, media_type="application/json", headers=headers)


async def gzip_without_etag(request: Request) -> Response:
    body = gzip.compress(b'{"id": 1}', mtime=0)
    return Response(body, media_type="application/json", headers={"Content-Encoding": "gzip"})


async def last_modified(request: Request) -> Response:
    return JSONResponse(ITEM, headers={"Last-Modified": LAST_MODIFIED})


async def big(request: Request) -> Response:
    return Response(BIG_BODY, media_type="application/octet-stream")


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"one,"
        yield b"two"

    return StreamingResponse(chunks(), media_type="text/plain")


async def created(request: Request) -> Response:
    return JSONResponse(ITEM, status_code=201)


async def no_content(request: Request) -> Response:
    return Response(status_code=204)


async def not_found(request: Request) -> Response:
    return JSONResponse({"detail": "missing"}, status_code=404)


async def server_error(request: Request) -> Response:
    return JSONResponse({"detail": "boom"}, status_code=500)


async def app_cache_control(request: Request) -> Response:
    return JSONResponse(ITEM, headers={"Cache-Control": "private, max-age=5", "Vary": "Cookie"})


async def app_no_store(request: Request) -> Response:
    return JSONResponse(ITEM, headers={"Cache-Control": "no-store"})


async def own_not_modified(request: Request) -> Response:
    headers = {"ETag": '"own"', "Content-Type": "application/json", "X-Debug": "1"}
    return Response(status_code=304, headers=headers)


async def echo_method(request: Request) -> Response:
    return JSONResponse({"method": request.method})


ROUTES = [
    Route("/json", json_item),
    Route("/app-etag", app_etag),
    Route("/gzip", gzip_with_app_etag),
    Route("/gzip-no-etag", gzip_without_etag),
    Route("/last-modified", last_modified),
    Route("/big", big),
    Route("/stream", stream),
    Route("/created", created),
    Route("/no-content", no_content),
    Route("/not-found", not_found),
    Route("/error", server_error),
    Route("/app-cache-control", app_cache_control),
    Route("/app-no-store", app_no_store),
    Route("/own-304", own_not_modified),
    Route("/echo", echo_method, methods=["GET", "POST", "PUT", "DELETE"]),
]


def starlette_app(**options: Any) -> Starlette:
    options.setdefault("etag_max_body", 1024)
    return Starlette(routes=list(ROUTES), middleware=[Middleware(HeadersMiddleware, **options)])


def client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def http_scope(method: str = "GET", path: str = "/", headers: list[Any] | None = None) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers or [],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
    }


async def no_request_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
