"""Hostile requests through the rate-limit middleware: never a 500, never a stray bucket."""

from __future__ import annotations

import random

import redis
from redis.cluster import RedisCluster

from cachemw.http.client_ip import ClientAddressPolicy
from cachemw.http.ratelimit import Rule
from cachemw.valkey import Valkey
from tests.ratelimit.conftest import call, limited_app
from tests.support.servers import all_keys

HEADER_NAMES = [b"x-forwarded-for", b"forwarded", b"x-real-ip", b"x-api-key", b"host"]
PIECES = [
    b"1.2.3.4", b"::1", b"[::1]:80", b"for=", b'for="', b"unknown", b",", b";", b'"', b"\\",
    b"%", b"\xff", b"\x00", b" ", b"::ffff:10.0.0.1", b"fe80::1%eth0", b"999.1.1.1", b"a" * 300,
]  # fmt: skip
PATHS = [
    "/users/", "/users/%", "/users/\x00", "/items/-1", "/items/99999999999999999999",
    "/login/", "//login", "/" + "a" * 65536, "/users/" + "é" * 100, "/api/../login",
]  # fmt: skip


async def test_random_hostile_requests_never_fail_and_stay_in_the_peer_bucket(
    valkey: Valkey, valkey_sync: redis.Redis | RedisCluster
) -> None:
    rules = [
        Rule(name="users", limit="1000/minute", routes=("/users/{id}", "/items/{id:int}")),
        Rule(name="all", limit="1000/minute", per_params=()),
    ]
    app = limited_app(valkey, rules=rules, client_address=ClientAddressPolicy())
    rng = random.Random(9)
    for _ in range(150):
        headers = [
            (rng.choice(HEADER_NAMES), b"".join(rng.choices(PIECES, k=rng.randint(0, 6))))
            for _ in range(rng.randint(0, 8))
        ]
        method = rng.choice(["GET", "HEAD", "POST", "DELETE", "BREW"])
        status = await call(app, method, rng.choice(PATHS), headers=headers)
        assert status in (200, 307, 404, 405), status
    # No trusted proxy: one peer, so at most one bucket per rule/route no matter the headers.
    assert len(all_keys(valkey_sync)) <= 3
