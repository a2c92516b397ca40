"""The baseline's document returned as pre-encoded bytes: the floor for a "bytes out" path."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

from bench.scenarios._common import PAYLOAD_BYTES

app = FastAPI()


@app.get("/")
async def catalog() -> Response:
    return Response(content=PAYLOAD_BYTES, media_type="application/json")
