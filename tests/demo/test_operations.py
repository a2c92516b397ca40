"""Search with its rate limit, /health, /metrics and the dashboard."""

from __future__ import annotations

import httpx
import pytest
import redis
from redis.cluster import RedisCluster

from cachemw.valkey.embedded import EmbeddedValkey
from demo_app.app import DemoApp
from tests.conftest import make_settings
from tests.demo.server import in_process, patient_config
from tests.support.servers import all_keys

SyncClient = redis.Redis | RedisCluster


def metric(text: str, name: str) -> float:
    """The sum of a Prometheus series over its labels."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((f"{name} ", f"{name}{{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_search_finds_products_by_name(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/search", params={"q": "LAMP"})
    results = response.json()["results"]
    assert results
    assert all("lamp" in p["name"].lower() or "lamp" in p["description"] for p in results)


async def test_search_wildcards_are_literal_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/search", params={"q": "%_"})
    assert response.json()["results"] == []


async def test_search_query_longer_than_100_characters_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/search", params={"q": "x" * 101})).status_code == 422


async def test_admitted_search_carries_the_ratelimit_fields(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/search", params={"q": "a"})
    assert response.headers["ratelimit-policy"] == '"search";q=10;w=10'
    assert response.headers["ratelimit"].startswith('"search";r=9;t=')


async def test_eleventh_search_in_ten_seconds_is_429_with_retry_after_and_ratelimit(
    client: httpx.AsyncClient,
) -> None:
    statuses = [(await client.get("/api/search?q=a")).status_code for _ in range(10)]
    limited = await client.get("/api/search?q=a")
    assert statuses == [200] * 10
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit"].startswith('"search";r=0;')
    assert limited.headers["content-type"] == "application/problem+json"


async def test_search_limit_is_per_client(demo: DemoApp, client: httpx.AsyncClient) -> None:
    for _ in range(11):
        await client.get("/api/search?q=a")
    other = httpx.ASGITransport(app=demo, client=("198.51.100.9", 40000))
    async with httpx.AsyncClient(transport=other, base_url="http://shop.test") as neighbour:
        assert (await neighbour.get("/api/search?q=a")).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/", "/api/stats", "/metrics", "/dashboard.js"])
async def test_operational_routes_never_create_a_session_or_any_key(
    client: httpx.AsyncClient, valkey_sync: SyncClient, path: str
) -> None:
    for _ in range(5):
        response = await client.get(path)
        assert response.status_code == 200
        assert "set-cookie" not in response.headers
    assert all_keys(valkey_sync) == []


async def test_health_reports_valkey_up(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {
        "status": "ok",
        "valkey": "up",
        "valkey_breaker": "closed",
    }


async def test_health_stays_200_and_reports_valkey_down(private_server: EmbeddedValkey) -> None:
    settings = make_settings(private_server.url, command_timeout=0.2)
    async with in_process(patient_config(private_server.url, valkey=settings)) as (_, client):
        private_server.stop()
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["valkey"] == "down"


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE cachemw_valkey_breaker_state gauge" in response.text
    assert metric(response.text, "cachemw_valkey_breaker_state") == 0


async def test_metrics_count_cache_hits_misses_sessions_and_limits(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/products/1")
    await client.get("/products/1")
    await client.post("/login", json={"username": "alice"})
    for _ in range(11):
        await client.get("/api/search?q=a")
    text = (await client.get("/metrics")).text
    assert metric(text, "cachemw_cache_hit_total") == 1
    assert metric(text, "cachemw_cache_miss_total") == 1
    assert metric(text, "cachemw_ratelimit_limited_total") == 1
    assert metric(text, "cachemw_ratelimit_allowed_total") == 11  # 10 searches and 1 login
    assert metric(text, "demo_active_sessions") == 1
    assert metric(text, "demo_http_requests_total") >= 14


async def test_stats_report_the_hit_ratio(client: httpx.AsyncClient) -> None:
    for _ in range(4):
        await client.get("/products/2")
    stats = (await client.get("/api/stats")).json()
    assert stats["cache"]["hit_ratio"] == 0.75
    assert stats["valkey"]["breaker"] == "closed"


async def test_dashboard_is_server_rendered_with_the_current_numbers(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/products/2")
    await client.get("/products/2")
    response = await client.get("/")
    assert response.headers["content-type"].startswith("text/html")
    assert '<b id="stat-hit-ratio">50%</b>' in response.text
    assert '<script src="/dashboard.js"></script>' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]


async def test_separate_state_valkey_holds_sessions_and_limits_not_cache_entries(
    valkey_url: str, private_server: EmbeddedValkey, valkey_sync: SyncClient
) -> None:
    config = patient_config(valkey_url, state_valkey=make_settings(private_server.url))
    async with in_process(config) as (_, client):
        await client.get("/products/1")
        await client.post("/login", json={"username": "alice"})
        health = (await client.get("/health")).json()
    state = redis.Redis.from_url(private_server.url)
    try:
        state_keys = [key.decode() for key in state.scan_iter()]
    finally:
        state.close()
    cache_keys = [key.decode() for key in all_keys(valkey_sync)]
    assert health["state_valkey"] == "up"
    assert any(":sess:" in key for key in state_keys)
    assert not any(":sess:" in key for key in cache_keys)
    assert cache_keys


async def test_search_query_is_function_cached_and_refreshed_by_a_product_update(
    demo: DemoApp, client: httpx.AsyncClient
) -> None:
    await client.get("/api/search?q=lamp")
    cached = await client.get("/api/search?q=lamp")
    assert demo.metrics.total("cachemw_function_cache_hit_total") == 1
    lamp = next(p for p in cached.json()["results"] if p["id"] == 1)
    etag = (await client.get("/products/1")).headers["etag"]
    await client.put("/products/1", json={"price": 77.0}, headers={"if-match": etag})
    refreshed = await client.get("/api/search?q=lamp")
    assert next(p for p in refreshed.json()["results"] if p["id"] == 1)["price"] == 77.0
    assert lamp["price"] != 77.0
