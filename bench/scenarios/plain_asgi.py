"""The server's floor: a bare ASGI callable sending the pre-encoded document, no framework.

Nothing in Python can answer a request through uvicorn for less; a cache hit served from
process memory (the near cache) is bounded by this row, not by the baseline.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from bench.scenarios._common import PAYLOAD_BYTES

_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(PAYLOAD_BYTES)),
    ],
}
_BODY = {"type": "http.response.body", "body": PAYLOAD_BYTES, "more_body": False}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(_START)
    await send(_BODY)
