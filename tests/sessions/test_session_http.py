"""Session behaviour seen through real HTTP (FastAPI and Starlette, standalone and Cluster)."""

from __future__ import annotations

from collections.abc import Callable

import redis

from tests.sessions.conftest import COOKIE, Browser, session_cookies
from tests.support.servers import all_keys


def session_keys(valkey_sync: redis.Redis) -> list[bytes]:
    return [k for k in all_keys(valkey_sync) if b":sess:" in k]


async def test_untouched_route_sets_no_cookie_and_writes_nothing(
    browser: Browser, valkey_sync: redis.Redis
) -> None:
    response = await browser.get("/public")
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "vary" not in response.headers
    assert all_keys(valkey_sync) == []


async def test_thousand_anonymous_reads_leave_no_keys_and_no_cookie(
    browser: Browser, valkey_sync: redis.Redis
) -> None:
    for _ in range(1000):
        response = await browser.get("/read")
        assert response.status_code == 200
        assert "set-cookie" not in response.headers
    assert all_keys(valkey_sync) == []


async def test_first_write_creates_session_with_secure_cookie(
    browser: Browser, valkey_sync: redis.Redis
) -> None:
    response = await browser.post("/cart/apple")
    assert response.status_code == 200
    (cookie,) = session_cookies(response)
    assert cookie.startswith(f"{COOKIE}=")
    attributes = cookie.split("; ")[1:]
    assert attributes == ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"]
    assert response.headers["cache-control"] == "no-store"
    assert len(session_keys(valkey_sync)) == 1
    assert (await browser.get("/read")).json()["cart"] == ["apple"]


async def test_raw_session_id_is_never_a_key_or_value(
    browser: Browser, valkey_sync: redis.Redis
) -> None:
    await browser.post("/cart/apple")
    await browser.post("/login/alice")
    assert browser.sid is not None
    sid = browser.sid.encode()
    for key in all_keys(valkey_sync):
        assert sid not in key
        if valkey_sync.type(key) == b"hash":
            for name, value in valkey_sync.hgetall(key).items():
                assert sid not in name
                assert sid not in value
        else:
            assert all(sid not in m for m in valkey_sync.zrange(key, 0, -1))


async def test_reading_session_adds_vary_cookie(browser: Browser) -> None:
    response = await browser.get("/read")
    assert response.headers["vary"] == "Cookie"


async def test_read_only_request_keeps_app_headers_and_sets_no_cookie(browser: Browser) -> None:
    await browser.post("/cart/apple")
    response = await browser.get("/read")
    assert session_cookies(response) == []
    assert "cache-control" not in response.headers


async def test_cookie_setting_response_overrides_public_cache_control(
    framework: str, browser: Browser
) -> None:
    if framework != "fastapi":
        return
    response = await browser.get("/cacheable")
    assert session_cookies(response)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["vary"] == "Accept-Encoding, Cookie"


async def test_forged_well_formed_id_is_never_adopted(
    browser: Browser, valkey_sync: redis.Redis
) -> None:
    forged = "A" * 64
    response = await browser.post("/cart/apple", cookie_header=f"{COOKIE}={forged}")
    assert response.status_code == 200
    assert browser.sid is not None
    assert browser.sid != forged
    assert len(session_keys(valkey_sync)) == 1
    assert (await browser.get("/read")).json()["cart"] == ["apple"]
    # The forged id still names no session.
    stranger = Browser(browser.http._transport.app)  # type: ignore[attr-defined]
    try:
        read = await stranger.get("/read", cookie_header=f"{COOKIE}={forged}")
        assert read.json() == {"cart": None, "user": None, "new": True}
    finally:
        await stranger.aclose()


async def test_unknown_cookie_on_read_is_cleared(browser: Browser) -> None:
    response = await browser.get("/read", cookie_header=f"{COOKIE}={'B' * 64}")
    (cookie,) = session_cookies(response)
    assert cookie.startswith(f"{COOKIE}=; Max-Age=0;")
    assert response.headers["cache-control"] == "no-store"


async def test_duplicated_session_cookie_is_treated_as_anonymous(
    browsers: Callable[[], Browser],
) -> None:
    owner = browsers()
    await owner.post("/cart/apple")
    other = browsers()
    header = f"{COOKIE}={owner.sid}; {COOKIE}={owner.sid}"
    assert (await other.get("/read", cookie_header=header)).json()["new"] is True


async def test_malformed_session_cookie_is_treated_as_anonymous(browser: Browser) -> None:
    for value in ["", "short", "A" * 63 + "!", "A" * 65, "%00" * 30]:
        response = await browser.get("/read", cookie_header=f"{COOKIE}={value}")
        assert response.status_code == 200
        assert response.json()["new"] is True


async def test_values_round_trip_typed(framework: str, browser: Browser) -> None:
    if framework != "fastapi":
        return
    await browser.post("/profile")
    assert (await browser.get("/profile")).json() == {"name": "Ada"}


async def test_hostile_cookie_headers_never_cause_5xx_or_keys(
    browser: Browser, valkey_sync: redis.Redis
) -> None:
    import random  # noqa: PLC0415

    rng = random.Random(5)  # seeded: reproducible, bounded
    alphabet = [*"AZaz09_-=;, \t\"'%{}\\", "\x7f", "\u00e9"]
    for _ in range(300):
        junk = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90)))
        header = rng.choice([junk, f"{COOKIE}={junk}", f"{COOKIE}={junk}; {COOKIE}=x", junk * 50])
        response = await browser.get("/read", cookie_header=header)
        assert response.status_code == 200
        assert response.json()["new"] is True
    assert all_keys(valkey_sync) == []
