"""The demo shop app (placeholder until the feature issues land)."""

from __future__ import annotations

from fastapi import FastAPI

from cachemw.valkey import Valkey, ValkeySettings


def create_app() -> FastAPI:
    """Build the demo app; configuration comes from the environment (``VALKEY_URL``...)."""
    valkey = Valkey(ValkeySettings.from_env())
    app = FastAPI(title="cachemw demo", lifespan=valkey.lifespan)

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {"status": "ok", "valkey": await valkey.ping()}

    return app
