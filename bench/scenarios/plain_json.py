"""BASELINE: a plain FastAPI endpoint returning a ~1 KB dict (FastAPI encodes it per request).

Every other scenario's ratio is measured against this one in the same run.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from bench.scenarios._common import PAYLOAD

app = FastAPI()


# response_model=None: exactly what an unannotated `return {...}` endpoint does
# (jsonable_encoder + JSONResponse), while keeping the function typed.
@app.get("/", response_model=None)
async def catalog() -> dict[str, Any]:
    return PAYLOAD
