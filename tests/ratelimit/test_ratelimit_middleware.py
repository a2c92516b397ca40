"""RateLimitMiddleware end to end on real Valkey (standalone and cluster)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import MutableMapping
from typing import Any, Literal

import httpx
import pytest
import redis
from redis.cluster import RedisCluster

from cachemw.http.client_ip import ClientAddressPolicy
from cachemw.http.ratelimit import QUOTA_EXCEEDED_TYPE, Rule
from cachemw.metrics import Metrics
from cachemw.ratelimit import RateLimitMiddleware, api_key
from cachemw.valkey import Valkey
from tests.ratelimit.conftest import call, client_for, limited_app
from tests.ratelimit.sf_parser import check_ratelimit, check_ratelimit_policy
from tests.support.servers import all_keys

LOGIN = Rule(name="login", limit="10/10s", routes=("/login",))


def log_keys(sync: redis.Redis | RedisCluster) -> list[bytes]:
    return [k for k in all_keys(sync) if b":log:" in k]


@pytest.mark.parametrize("round_", range(5))
async def test_concurrent_requests_through_two_app_instances_admit_exactly_the_limit(
    valkey: Valkey,
    second_valkey: Valkey,
    valkey_sync: redis.Redis | RedisCluster,
    round_: int,
) -> None:
    apps = [limited_app(valkey, rules=[LOGIN]), limited_app(second_valkey, rules=[LOGIN])]
    clients = [client_for(app, ip=f"198.51.100.{round_ + 1}") for app in apps]
    go = asyncio.Event()

    async def request(n: int) -> httpx.Response:
        await go.wait()
        return await clients[n % 2].get("/login")

    tasks = [asyncio.create_task(request(n)) for n in range(30)]
    await asyncio.sleep(0)
    go.set()
    responses = await asyncio.gather(*tasks)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [429] * 20
    (key,) = log_keys(valkey_sync)
    assert valkey_sync.zcard(key) == 10
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
    for client in clients:
        await client.aclose()


async def test_rejection_is_a_problem_document_that_no_cache_stores(valkey: Valkey) -> None:
    app = limited_app(valkey, rules=[Rule(name="login", limit="1/minute", routes=("/login",))])
    async with client_for(app) as client:
        await client.get("/login")
        response = await client.get("/login")
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    body = json.loads(response.content)
    assert body["type"] == QUOTA_EXCEEDED_TYPE
    assert body["violated-policies"] == ["login"]
    assert 55 <= int(response.headers["retry-after"]) <= 60


async def test_rejected_requests_never_reach_the_app(valkey: Valkey) -> None:
    reached: list[str] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limited = RateLimitMiddleware(app, valkey=valkey, rules=[Rule(name="a", limit="1/minute")])
    assert [await call(limited, "POST", "/x") for _ in range(3)] == [200, 429, 429]
    assert reached == ["/x"]


async def test_retry_after_is_never_earlier_than_the_reset_of_the_violated_policy(
    valkey: Valkey,
) -> None:
    rule = Rule(name="api", limit="2/10s;3/minute", routes=("/login",))
    async with client_for(limited_app(valkey, rules=[rule])) as client:
        responses = [await client.get("/login") for _ in range(5)]
    for response in responses[2:]:
        limits = check_ratelimit(response.headers["ratelimit"])
        violated = json.loads(response.content)["violated-policies"]
        assert violated
        for policy in violated:
            t = limits[policy]["t"]
            assert isinstance(t, int)
            assert int(response.headers["retry-after"]) >= t


@pytest.mark.parametrize("algorithm", ["sliding_log", "sliding_counter", "gcra"])
async def test_allowed_responses_carry_the_ratelimit_fields(
    valkey: Valkey, algorithm: Literal["sliding_log", "sliding_counter", "gcra"]
) -> None:
    rule = Rule(name="login", limit="10/10s;1000/day", routes=("/login",), algorithm=algorithm)
    async with client_for(limited_app(valkey, rules=[rule])) as client:
        response = await client.get("/login")
    assert response.status_code == 200
    policies = check_ratelimit_policy(response.headers["ratelimit-policy"])
    assert policies == {"login-10s": {"q": 10, "w": 10}, "login-86400s": {"q": 1000, "w": 86400}}
    limits = check_ratelimit(response.headers["ratelimit"])
    assert limits["login-10s"]["r"] == 9
    assert limits["login-86400s"]["r"] == 999
    t = limits["login-10s"]["t"]
    assert isinstance(t, int)
    assert 0 <= t <= 10
    if algorithm == "sliding_log":
        assert t >= 9  # the one entry leaves the window 10 s after it was made


async def test_ratelimit_fields_on_allowed_responses_can_be_turned_off(valkey: Valkey) -> None:
    app = limited_app(valkey, rules=[LOGIN], send_headers=False)
    async with client_for(app) as client:
        response = await client.get("/login")
    assert "ratelimit" not in response.headers
    assert "ratelimit-policy" not in response.headers


async def test_legacy_headers_are_optional(valkey: Valkey) -> None:
    app = limited_app(valkey, rules=[LOGIN], legacy_headers=True)
    async with client_for(app) as client:
        response = await client.get("/login")
    assert response.headers["x-ratelimit-limit"] == "10"
    assert response.headers["x-ratelimit-remaining"] == "9"


@pytest.mark.parametrize(
    ("peer", "spoof"),
    [
        ("203.0.113.7", ("x-forwarded-for", "1.1.1.{n}")),
        ("203.0.113.7", ("x-real-ip", "2.2.2.{n}")),
        ("203.0.113.7", ("forwarded", "for=3.3.3.{n}")),
        ("10.9.9.9", ("x-forwarded-for", "1.1.1.{n}")),  # trusted nets exclude this peer
    ],
)
async def test_spoofed_forwarding_headers_from_an_untrusted_peer_land_in_its_bucket(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster, peer: str, spoof: tuple[str, str]
) -> None:
    rule = Rule(name="login", limit="3/minute", routes=("/login",))
    policy = ClientAddressPolicy(trusted_proxies=("10.0.0.0/16",))
    app = limited_app(valkey, rules=[rule], client_address=policy)
    async with client_for(app, ip=peer) as client:
        statuses = [
            (await client.get("/login", headers={spoof[0]: spoof[1].format(n=n)})).status_code
            for n in range(6)
        ]
    assert statuses == [200, 200, 200, 429, 429, 429]
    assert len(log_keys(valkey_sync)) == 1


async def test_a_trusted_proxy_forwards_its_clients_into_their_own_buckets(
    valkey: Valkey,
) -> None:
    rule = Rule(name="login", limit="1/minute", routes=("/login",))
    policy = ClientAddressPolicy(trusted_proxies=("10.0.0.0/8",))
    app = limited_app(valkey, rules=[rule], client_address=policy)
    async with client_for(app, ip="10.0.0.1") as client:
        first = await client.get("/login", headers={"x-forwarded-for": "203.0.113.1"})
        second = await client.get("/login", headers={"x-forwarded-for": "203.0.113.2"})
        again = await client.get("/login", headers={"x-forwarded-for": "6.6.6.6, 203.0.113.1"})
    assert [first.status_code, second.status_code, again.status_code] == [200, 200, 429]


async def test_addresses_in_one_ipv6_64_share_a_bucket(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster
) -> None:
    app = limited_app(valkey, rules=[Rule(name="api", limit="10/minute")])
    network = ipaddress.ip_network("2001:db8:7:9::/64")
    statuses: list[int] = []
    for start in range(0, 1000, 100):
        batch = [str(network[i * 104729 + 3]) for i in range(start, start + 100)]
        statuses += await asyncio.gather(*(call(app, "GET", "/free", peer=a) for a in batch))
    assert statuses.count(200) == 10
    assert statuses.count(429) == 990
    assert len(log_keys(valkey_sync)) == 1


@pytest.mark.parametrize(
    "requests",
    [
        [("GET", "/login"), ("GET", "/login?x=1"), ("GET", "/%6Cogin"), ("HEAD", "/login")],
    ],
)
async def test_query_percent_encoding_and_head_share_the_route_bucket(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster, requests: list[tuple[str, str]]
) -> None:
    rule = Rule(name="login", limit="3/minute", routes=("/login",), methods=("GET",))
    async with client_for(limited_app(valkey, rules=[rule])) as client:
        statuses = [(await client.request(m, url)).status_code for m, url in requests]
    assert statuses == [200, 200, 200, 429]
    assert len(log_keys(valkey_sync)) == 1


async def test_percent_encoded_path_from_the_server_matches_the_route(valkey: Valkey) -> None:
    rule = Rule(name="login", limit="1/minute", routes=("/login",))
    app = limited_app(valkey, rules=[rule])
    # What an ASGI server hands over for GET /%6Cogin: path decoded, raw_path as sent.
    assert await call(app, "GET", "/login", raw_path=b"/%6Cogin") == 200
    assert await call(app, "GET", "/login", raw_path=b"/login", query=b"x=1") == 429


async def test_routes_match_below_the_root_path_like_the_router(valkey: Valkey) -> None:
    rule = Rule(name="login", limit="1/minute", routes=("/login",))
    app = limited_app(valkey, rules=[rule])
    assert await call(app, "GET", "/prefix/login", root_path="/prefix") == 200
    assert await call(app, "GET", "/prefix/login", root_path="/prefix") == 429


async def test_urls_of_one_route_template_share_a_bucket(valkey: Valkey) -> None:
    rule = Rule(name="users", limit="2/minute", routes=("/users/{id}",))
    async with client_for(limited_app(valkey, rules=[rule])) as client:
        statuses = [(await client.get(f"/users/{n}")).status_code for n in (1, 2, 3)]
    assert statuses == [200, 200, 429]


async def test_per_param_buckets_split_a_route_template(valkey: Valkey) -> None:
    rule = Rule(name="users", limit="1/minute", routes=("/users/{id}",), per_params=("id",))
    async with client_for(limited_app(valkey, rules=[rule])) as client:
        statuses = [(await client.get(f"/users/{n}")).status_code for n in (1, 2, 1)]
    assert statuses == [200, 200, 429]


async def test_route_convertors_match_like_the_router(valkey: Valkey) -> None:
    rule = Rule(name="items", limit="1/minute", routes=("/items/{id:int}",))
    async with client_for(limited_app(valkey, rules=[rule])) as client:
        assert (await client.get("/items/1")).status_code == 200
        assert (await client.get("/items/2")).status_code == 429
        assert (await client.get("/items/abc")).status_code == 404  # not the route: not limited


async def test_rules_match_only_their_methods(valkey: Valkey) -> None:
    rule = Rule(name="login", limit="1/minute", routes=("/login",), methods=("POST",))
    async with client_for(limited_app(valkey, rules=[rule])) as client:
        statuses = [(await client.get("/login")).status_code for _ in range(3)]
        posts = [(await client.post("/login")).status_code for _ in range(2)]
    assert statuses == [200, 200, 200]
    assert posts == [200, 429]


async def test_path_prefix_rule_counts_every_path_under_it(valkey: Valkey) -> None:
    rule = Rule(name="api", limit="2/minute", path_prefixes=("/api",))
    async with client_for(limited_app(valkey, rules=[rule])) as client:
        statuses = [(await client.get(p)).status_code for p in ("/api/a", "/api/b", "/api/a")]
        other = (await client.get("/free")).status_code
    assert statuses == [200, 200, 429]
    assert other == 200


async def test_routes_of_a_rule_have_separate_buckets_by_default(valkey: Valkey) -> None:
    rule = Rule(name="api", limit="1/minute", routes=("/api/a", "/api/b"))
    async with client_for(limited_app(valkey, rules=[rule])) as client:
        statuses = [(await client.get(p)).status_code for p in ("/api/a", "/api/b", "/api/a")]
    assert statuses == [200, 200, 429]


async def test_named_bucket_is_shared_across_routes_and_rules(valkey: Valkey) -> None:
    rules = [
        Rule(name="a", limit="2/minute", routes=("/api/a",), bucket="shared"),
        Rule(name="b", limit="2/minute", routes=("/api/b",), bucket="shared"),
    ]
    async with client_for(limited_app(valkey, rules=rules)) as client:
        statuses = [(await client.get(p)).status_code for p in ("/api/a", "/api/b", "/api/a")]
    assert statuses == [200, 200, 429]


async def test_exempt_requests_are_never_counted(valkey: Valkey) -> None:
    app = limited_app(valkey, rules=[Rule(name="api", limit="1/minute")], exempt=lambda scope: True)
    async with client_for(app) as client:
        statuses = [(await client.get("/free")).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]


async def test_rule_skips_requests_its_key_function_cannot_identify(valkey: Valkey) -> None:
    rule = Rule(name="keys", limit="1/minute", identity=api_key("x-api-key"))
    async with client_for(limited_app(valkey, rules=[rule])) as client:
        anonymous = [(await client.get("/free")).status_code for _ in range(3)]
        keyed = [
            (await client.get("/free", headers={"x-api-key": "k1"})).status_code for _ in range(2)
        ]
    assert anonymous == [200, 200, 200]
    assert keyed == [200, 429]


async def test_shadow_rule_never_rejects_but_counts_what_it_would_do(valkey: Valkey) -> None:
    metrics = Metrics()
    rule = Rule(name="trial", limit="1/minute", shadow=True)
    app = limited_app(valkey, rules=[rule], metrics=metrics)
    async with client_for(app) as client:
        responses = [await client.get("/free") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all("ratelimit" not in r.headers for r in responses)
    assert metrics.value("cachemw_ratelimit_shadow_limited_total", rule="trial") == 2
    assert metrics.value("cachemw_ratelimit_allowed_total", rule="trial") == 1


async def test_metrics_count_allowed_and_limited_per_rule(valkey: Valkey) -> None:
    metrics = Metrics()
    app = limited_app(valkey, rules=[Rule(name="api", limit="2/minute")], metrics=metrics)
    async with client_for(app) as client:
        for _ in range(5):
            await client.get("/free")
    assert metrics.value("cachemw_ratelimit_allowed_total", rule="api") == 2
    assert metrics.value("cachemw_ratelimit_limited_total", rule="api") == 3


async def test_streaming_response_passes_through_with_headers(valkey: Valkey) -> None:
    async with client_for(limited_app(valkey, rules=[Rule(name="s", limit="5/minute")])) as c:
        response = await c.get("/stream")
    assert response.content == b"abc"
    assert "ratelimit" in response.headers


async def test_non_http_scopes_pass_through(valkey: Valkey) -> None:
    seen: list[str] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    middleware = RateLimitMiddleware(app, valkey=valkey, rules=[Rule(name="a", limit="1/s")])
    await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rules": [Rule(name="a", limit="1/s"), Rule(name="a", limit="2/s")]}, "unique"),
        ({"rules": Rule(name="a", limit="1/s")}, "rules"),
        ({"rules": [], "identity": "ip"}, "identity"),
        ({"rules": [], "exempt": 3}, "exempt"),
        ({"rules": [], "unavailable_retry_after": 0}, "unavailable_retry_after"),
        (
            {"rules": [Rule(name="a", limit="1/s", routes=("/u/{id}",), per_params=("x",))]},
            "per_params",
        ),
    ],
)
def test_invalid_middleware_option_error_names_it(
    valkey: Valkey, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        limited_app(valkey, **options)


async def test_per_param_bucket_is_the_same_however_the_number_is_spelled(
    valkey: Valkey,
) -> None:
    # /items/7, /items/007 and /items/0007 are one item to the app's {id:int} route: a
    # per-item limit must not be escaped by zero-padding the id.
    rule = Rule(name="items", limit="1/minute", routes=("/items/{id:int}",), per_params=("id",))
    async with client_for(limited_app(valkey, rules=[rule])) as client:
        statuses = [(await client.get(f"/items/{n}")).status_code for n in ("7", "007", "0007")]
    assert statuses == [200, 429, 429]
