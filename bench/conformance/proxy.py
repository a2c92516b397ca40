"""A minimal reverse proxy (pure ASGI) in front of the suite's origin, wrapped in the cache.

Only what a proxy needs: forward method, target, body and end-to-end headers; return status,
end-to-end headers and body. The cache under test does everything else.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from cachemw.cache import CacheMiddleware, CacheSettings
from cachemw.valkey import Valkey

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# RFC 9110 §7.6.1: connection-specific fields are not forwarded; Host is the origin's.
_HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
     b"transfer-encoding", b"upgrade", b"host", b"content-length")
)  # fmt: skip


class ReverseProxy:
    """Forwards every request to ``origin`` with httpx (no default request headers)."""

    def __init__(self, origin: str) -> None:
        self.origin = origin.rstrip("/")
        self.client: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self.client is None:
            # A fresh connection per request: some test responses frame their bodies oddly
            # (on purpose), which must not spill into the next test's response.
            self.client = httpx.AsyncClient(
                timeout=30.0,
                follow_redirects=False,
                limits=httpx.Limits(max_keepalive_connections=0),
            )
            self.client.headers.clear()  # forward exactly the client's headers
        return self.client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self.client is not None:
                        await self.client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP_BY_HOP]
        request = self._client().build_request(
            scope["method"], self.origin + target.decode("latin-1"), headers=headers, content=body
        )
        try:
            response = await self._client().send(request, stream=True)
            try:
                # Raw bytes: a proxy passes content codings through, it does not decode them.
                payload = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except httpx.HTTPError:
            # An origin reply the proxy cannot parse (some tests send odd framing on purpose).
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        raw = [(k.lower(), v) for k, v in response.headers.raw]
        # RFC 9110 §7.6.1: fields named in Connection are hop-by-hop too.
        listed = {
            token.strip().lower()
            for name, value in raw
            if name == b"connection"
            for token in value.split(b",")
        }
        out = [(k, v) for k, v in raw if k not in _HOP_BY_HOP and k not in listed]
        out.append((b"content-length", b"%d" % len(payload)))
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        await send({"type": "http.response.body", "body": payload})


def build_app() -> Any:
    """The app under test, configured from ``CONFORMANCE_ORIGIN`` / ``CONFORMANCE_VALKEY``."""
    valkey = Valkey.from_url(os.environ["CONFORMANCE_VALKEY"], command_timeout=1.0)
    settings = CacheSettings(
        # The suite sends its own cookies and test headers; its URLs are unique per test.
        coalesce_wait=2.0,
        xfetch_beta=0.0,
    )
    return CacheMiddleware(
        ReverseProxy(os.environ["CONFORMANCE_ORIGIN"]), valkey=valkey, settings=settings
    )
