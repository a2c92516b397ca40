"""Every benchmark scenario, one line each.

HOW TO ADD A SCENARIO
=====================
1. Write a module ``bench/scenarios/<name>.py`` that builds a module-level ASGI ``app``
   (FastAPI/Starlette) with one endpoint. Rules:
   - Serve the shared document: ``from bench.scenarios._common import PAYLOAD, PAYLOAD_BYTES``
     (a ~1 KB dict and its JSON bytes), and ``slow_origin()`` for "an origin worth caching"
     (sleeps 50 ms: a cache that misses under load shows up as a collapse in req/s).
   - Valkey: read the URL with ``valkey_url()`` (env ``BENCH_VALKEY_URL``) *inside the
     lifespan*, never at import time (tests import every module without a server). Create and
     close clients in the app's ``lifespan``.
   - No I/O at import; anything that needs Valkey happens in the lifespan or per request.
   - A peer package (fastapi-cache2, cashews, ...) is used exactly as its README documents,
     against the same Valkey, and listed in ``bench/requirements-peers.txt`` (bench only,
     never a runtime dependency). Put its import names in ``requires=``: if it cannot be
     installed/imported the scenario is reported as skipped, not crashed.
2. Add one ``Scenario(...)`` line to ``SCENARIOS`` below (keep the groups together). Fields:
   ``name`` (unique, shown in the table), ``app`` ("module:attribute"), ``description``,
   ``path``/``method``/``headers``/``body`` of the request under load, ``needs_valkey``
   (only then does the app get ``BENCH_VALKEY_URL``, and its commands are counted),
   ``requires``, ``setup_path`` (requested once before warm-up; the cookies it sets are sent
   on every load request — how session scenarios log in), ``revalidate`` (after warm-up,
   take the response's ETag and send it as If-None-Match on every load request — a client
   revalidating; pair with ``expect_status=304``), ``warmup_requests``,
   ``expect_status``/``expect_header`` (checked on one probe request after warm-up, so a
   scenario that silently stopped doing its job — a cache that never hits, a limiter that
   429s — is flagged instead of measured), ``design_commands`` (Valkey commands per request
   the design promises, e.g. 1 per cache hit, 0 for an untouched session: a measured value
   that differs is flagged under the table), ``quick`` (part of ``--quick``).
   Stampede scenarios set ``burst=N`` instead of being load-tested: each round sends N
   simultaneous requests (one connection each) to a cold key — ``{token}`` in ``path`` is
   replaced by a fresh token per burst — and reads the app's origin-call counter at
   ``origin_calls_path`` before and after (``CountingOrigin`` + ``add_origin_calls_route``
   in ``_common`` do both). They are reported in a table of their own.
3. Run ``.venv/bin/python -m bench --only <name>`` (the baseline is always measured too) and
   ``.venv/bin/python -m pytest tests/bench``.

Keep endpoints free of work that is not the thing being measured: every scenario returns the
same document so that ratios to the baseline measure only the machinery around it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Group = Literal["baseline", "cachemw", "peer"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, kw_only=True, slots=True)
class Scenario:
    """One ASGI app under one kind of request load."""

    name: str
    app: str
    description: str
    group: Group
    path: str = "/"
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    needs_valkey: bool = False
    requires: tuple[str, ...] = ()
    setup_path: str | None = None
    revalidate: bool = False
    warmup_requests: int = 200
    expect_status: int = 200
    expect_header: tuple[str, str] | None = None
    design_commands: float | None = None
    burst: int = 0
    origin_calls_path: str | None = None
    quick: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"name must match {_NAME.pattern} (lowercase, digits, '_.-'), got {self.name!r}"
            )
        module, _, attribute = self.app.partition(":")
        if not module or not attribute:
            raise ValueError(f"app must be 'module:attribute', got {self.app!r}")
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {sorted(_METHODS)}, got {self.method!r}")
        for path in (self.path, self.setup_path):
            if path is not None and not path.startswith("/"):
                raise ValueError(f"path and setup_path must start with '/', got {path!r}")
        if not 0 <= self.warmup_requests <= 100_000:
            raise ValueError(f"warmup_requests must be in 0..100000, got {self.warmup_requests}")
        if self.design_commands is not None and self.design_commands < 0:
            raise ValueError(f"design_commands must be >= 0, got {self.design_commands}")
        if not 0 <= self.burst <= 2000:
            raise ValueError(f"burst must be in 0..2000 requests, got {self.burst}")
        if self.burst and ("{token}" not in self.path or self.origin_calls_path is None):
            raise ValueError(
                f"a burst scenario needs '{{token}}' in path and an origin_calls_path, "
                f"got path={self.path!r}, origin_calls_path={self.origin_calls_path!r}"
            )
        if not 100 <= self.expect_status <= 599:
            raise ValueError(f"expect_status must be an HTTP status, got {self.expect_status}")

    def path_for(self, token: str) -> str:
        """The request path, with a burst scenario's cold-key ``{token}`` filled in."""
        return self.path.replace("{token}", token)

    @property
    def module(self) -> str:
        return self.app.partition(":")[0]

    @property
    def attribute(self) -> str:
        return self.app.partition(":")[2]


BASELINE: Final = "plain_json"

_S = "bench.scenarios."

SCENARIOS: Final[tuple[Scenario, ...]] = (
    # --- baselines: no Valkey -------------------------------------------------------------
    Scenario(name="plain_json", group="baseline", app=_S + "plain_json:app", quick=True,
             description="BASELINE: plain FastAPI endpoint returning a ~1 KB dict"),
    Scenario(name="plain_bytes", group="baseline", app=_S + "plain_bytes:app", quick=True,
             description="same document as pre-encoded bytes (the 'bytes out' floor)"),
    Scenario(name="plain_asgi", group="baseline", app=_S + "plain_asgi:app", quick=True,
             description="bare ASGI app sending the pre-encoded bytes (the server's floor)"),
    # --- cachemw --------------------------------------------------------------------------
    Scenario(name="cachemw_cache_hit", group="cachemw", app=_S + "cachemw_cache:app",
             needs_valkey=True, expect_header=("cache-status", "hit"), design_commands=1,
             quick=True, description="CacheMiddleware hit (slow origin, max-age=600)"),
    Scenario(name="cachemw_cache_near_hit", group="cachemw",
             app=_S + "cachemw_cache_near:app", needs_valkey=True,
             expect_header=("cache-status", "hit"),
             description="CacheMiddleware hit served from the near cache (0 commands/hit)"),
    Scenario(name="cachemw_cache_revalidate_304", group="cachemw",
             app=_S + "cachemw_cache:app", needs_valkey=True, revalidate=True,
             expect_status=304, design_commands=1,
             description="CacheMiddleware: If-None-Match of the stored ETag answered 304"),
    Scenario(name="cachemw_headers_etag", group="cachemw", app=_S + "cachemw_headers:app",
             expect_header=("etag", '"'), design_commands=0, quick=True,
             description="HeadersMiddleware on the baseline: cache_policy + body ETag"),
    Scenario(name="cachemw_headers_304", group="cachemw", app=_S + "cachemw_headers:app",
             revalidate=True, expect_status=304, design_commands=0,
             description="HeadersMiddleware: If-None-Match matches, 304 (origin still runs)"),
    Scenario(name="cachemw_ratelimit_allowed", group="cachemw",
             app=_S + "cachemw_ratelimit:app", needs_valkey=True, design_commands=1,
             expect_header=("ratelimit", ""), quick=True,
             description="RateLimitMiddleware (allowed), one sliding-window EVALSHA"),
    Scenario(name="cachemw_ratelimit_dependency_allowed", group="cachemw",
             app=_S + "cachemw_ratelimit_dependency:app", needs_valkey=True,
             design_commands=1,
             description="rate limit as a FastAPI dependency (allowed)"),
    Scenario(name="cachemw_session_read_modify", group="cachemw",
             app=_S + "cachemw_sessions:app", path="/modify", setup_path="/login",
             needs_valkey=True, quick=True,
             description="SessionMiddleware: load, read, change one value"),
    Scenario(name="cachemw_session_read_only", group="cachemw", app=_S + "cachemw_sessions:app",
             path="/read", setup_path="/login", needs_valkey=True,
             description="SessionMiddleware: load and read only"),
    Scenario(name="cachemw_session_untouched", group="cachemw",
             app=_S + "cachemw_sessions:app", path="/untouched", setup_path="/login",
             needs_valkey=True, design_commands=0,
             description="SessionMiddleware: cookie sent, session never loaded"),
    Scenario(name="cachemw_cache_stampede", group="cachemw",
             app=_S + "cachemw_cache_stampede:app", needs_valkey=True, path="/items/{token}",
             burst=500, origin_calls_path="/_bench/origin-calls", warmup_requests=20,
             description="CacheMiddleware: 500 simultaneous requests for one cold key"),
    # --- peers (issue 8): each in its documented usage, same Valkey ----------------------
    Scenario(name="fastapi_cache2_hit", group="peer", app=_S + "fastapi_cache2_hit:app",
             needs_valkey=True, requires=("fastapi_cache", "jinja2"),
             expect_header=("x-fastapi-cache", "HIT"),
             description="fastapi-cache2 @cache(expire=600) hit, RedisBackend"),
    Scenario(name="cashews_hit", group="peer", app=_S + "cashews_hit:app",
             needs_valkey=True, requires=("cashews",),
             description="cashews @cache(ttl='10m') hit, redis:// backend (default: concurrent "
                         "identical calls coalesced in-process)"),
    Scenario(name="cashews_hit_uncoalesced", group="peer",
             app=_S + "cashews_hit_uncoalesced:app", needs_valkey=True, requires=("cashews",),
             description="cashews hit with protected=False: every request reads Valkey"),
    Scenario(name="cashews_middlewares_hit", group="peer",
             app=_S + "cashews_middlewares_hit:app", needs_valkey=True, requires=("cashews",),
             expect_header=("etag", ""),
             description="cashews hit behind its ETag + Cache-Control middlewares"),
    Scenario(name="fastapi_cache2_stampede", group="peer",
             app=_S + "fastapi_cache2_stampede:app", needs_valkey=True,
             requires=("fastapi_cache", "jinja2"), path="/items/{token}", burst=500,
             origin_calls_path="/_bench/origin-calls", warmup_requests=20,
             description="fastapi-cache2: 500 simultaneous requests for one cold key"),
    Scenario(name="cashews_stampede", group="peer", app=_S + "cashews_stampede:app",
             needs_valkey=True, requires=("cashews",), path="/items/{token}", burst=500,
             origin_calls_path="/_bench/origin-calls", warmup_requests=20,
             description="cashews (default, coalescing): 500 simultaneous requests, one cold key"),
    Scenario(name="slowapi_allowed", group="peer", app=_S + "slowapi_allowed:app",
             needs_valkey=True, requires=("slowapi", "limits"),
             description="slowapi @limiter.limit (allowed), redis:// storage"),
    Scenario(name="fastapi_limiter_allowed", group="peer",
             app=_S + "fastapi_limiter_allowed:app", needs_valkey=True,
             requires=("fastapi_limiter", "pyrate_limiter"),
             description="fastapi-limiter RateLimiter dependency (allowed), RedisBucket"),
    Scenario(name="starsessions_read_modify", group="peer",
             app=_S + "starsessions_read_modify:app", needs_valkey=True,
             requires=("starsessions",), setup_path="/login",
             description="starsessions RedisStore: load, read, modify, save"),
)  # fmt: skip


def scenario_named(name: str) -> Scenario:
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    raise KeyError(f"no scenario named {name!r}; known: {', '.join(s.name for s in SCENARIOS)}")


def select(*, quick: bool, only: tuple[str, ...] = ()) -> tuple[Scenario, ...]:
    """The scenarios to run, baseline first and always included (ratios need it)."""
    if only:
        for name in only:
            scenario_named(name)  # raises KeyError naming the known scenarios
        wanted = set(only) | {BASELINE}
        chosen = [s for s in SCENARIOS if s.name in wanted]
    elif quick:
        chosen = [s for s in SCENARIOS if s.quick or s.name == BASELINE]
    else:
        chosen = list(SCENARIOS)
    chosen.sort(key=lambda s: s.name != BASELINE)
    return tuple(chosen)
