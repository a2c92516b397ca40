"""The dashboard page, its live numbers, ``/metrics`` and ``/health``.

The page is plain HTML rendered here (current numbers filled in on the server) plus one
small script, served from this app so the Content-Security-Policy can forbid everything
else. None of these routes loads the session, so polling them creates nothing in Valkey.
"""

from __future__ import annotations

import asyncio
import html
from pathlib import Path
from string import Template
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

from cachemw.headers.fastapi import cache_policy
from cachemw.metrics import Metrics
from cachemw.sessions import SessionStore, SessionStoreUnavailable
from cachemw.valkey import Valkey
from demo_app.db import PRODUCT_COUNT, ShopDatabase
from demo_app.observability import ActiveSessions

__all__ = ["DemoStats", "dashboard_router"]

WEB_DIR = Path(__file__).parent / "web"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
NO_STORE = cache_policy(no_store=True)
_USERS_COUNTED = 100  # the most recent users whose sessions the dashboard counts


class DemoStats:
    """The numbers the dashboard shows, read from the shared Metrics and from Valkey."""

    def __init__(
        self,
        metrics: Metrics,
        valkey: Valkey,
        store: SessionStore,
        db: ShopDatabase,
        active: ActiveSessions,
        *,
        state_valkey: Valkey | None = None,
    ) -> None:
        self.metrics = metrics
        self.valkey = valkey
        self.state_valkey = state_valkey if state_valkey is not valkey else None
        self.store = store
        self.db = db
        self.active = active

    async def refresh_active_sessions(self) -> int | None:
        """Live sessions of recent users, from their session indexes (no SCAN)."""
        users = await self.db.recent_users(limit=_USERS_COUNTED)
        try:
            listed = await asyncio.gather(*(self.store.list_user_sessions(u) for u in users))
        except SessionStoreUnavailable:
            return None
        self.active.value = sum(len(sessions) for sessions in listed)
        return int(self.active.value)

    async def snapshot(self) -> dict[str, Any]:
        total = self.metrics.total
        hits = total("cachemw_cache_hit_total")
        stale = total("cachemw_cache_stale_total")
        coalesced = total("cachemw_cache_coalesced_total")
        misses = total("cachemw_cache_miss_total")
        # Answered from the cache without running the app: hits, stale answers and requests
        # that waited for another request's fill (coalesced) instead of filling themselves.
        from_cache = hits + stale + coalesced
        looked_up = from_cache + misses
        return {
            "cache": {
                "hit": hits,
                "stale": stale,
                "miss": misses,
                "coalesced": coalesced,
                "hit_ratio": round(from_cache / looked_up, 3) if looked_up else None,
            },
            "rate_limits": {
                "allowed": total("cachemw_ratelimit_allowed_total"),
                "limited": total("cachemw_ratelimit_limited_total"),
            },
            "sessions": {"active": await self.refresh_active_sessions()},
            "valkey": {"breaker": self.valkey.breaker.state.value},
        }


def _number(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render_dashboard(template: Template, stats: dict[str, Any]) -> str:
    cache = stats["cache"]
    ratio = cache["hit_ratio"]
    values = {
        "hit_ratio": "-" if ratio is None else f"{ratio * 100:.0f}%",
        "coalesced": _number(cache["coalesced"]),
        "limited": _number(stats["rate_limits"]["limited"]),
        "sessions": _number(stats["sessions"]["active"]),
        "breaker": stats["valkey"]["breaker"],
        "product_options": "".join(
            f'<option value="{i}">{i}</option>' for i in range(1, PRODUCT_COUNT + 1)
        ),
    }
    escaped = {k: v if k == "product_options" else html.escape(v) for k, v in values.items()}
    return template.substitute(escaped)


def dashboard_router(stats: DemoStats) -> APIRouter:
    router = APIRouter()
    # Read once when the app is built (never at import time).
    template = Template((WEB_DIR / "dashboard.html").read_text(encoding="utf-8"))
    script = (WEB_DIR / "dashboard.js").read_bytes()

    @router.get("/", response_class=HTMLResponse, dependencies=[NO_STORE])
    async def dashboard() -> HTMLResponse:
        page = render_dashboard(template, await stats.snapshot())
        return HTMLResponse(page, headers={"content-security-policy": CONTENT_SECURITY_POLICY})

    @router.get("/dashboard.js", dependencies=[cache_policy(public=True, max_age=60)])
    async def dashboard_script() -> Response:
        return Response(script, media_type="text/javascript; charset=utf-8")

    @router.get("/api/stats", dependencies=[NO_STORE])
    async def live_stats() -> dict[str, Any]:
        return await stats.snapshot()

    @router.get("/metrics", dependencies=[NO_STORE])
    async def prometheus_metrics() -> Response:
        await stats.refresh_active_sessions()
        return Response(stats.metrics.render_prometheus(), media_type=PROMETHEUS_TEXT)

    @router.get("/health", dependencies=[NO_STORE])
    async def health() -> dict[str, str]:
        # Liveness: 200 while the process serves; Valkey's state is reported, not required
        # (the cache fails open; only session routes and the login limit need it).
        report = {"status": "ok"}
        instances = {"valkey": stats.valkey, "state_valkey": stats.state_valkey}
        for name, valkey in instances.items():
            if valkey is not None:
                report[name] = "up" if await valkey.ping() else "down"
                report[f"{name}_breaker"] = valkey.breaker.state.value
        return report

    return router
