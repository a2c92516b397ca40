"""Login, /me, the cart and logout over server-side sessions, plus the login rate limit."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from cachemw.valkey.embedded import EmbeddedValkey
from tests.conftest import make_settings
from tests.demo.server import in_process, patient_config

COOKIE = "demo_sid"


def cookie_header(session_id: str) -> dict[str, str]:
    return {"cookie": f"{COOKIE}={session_id}"}


async def login(client: httpx.AsyncClient, username: str = "alice") -> str:
    response = await client.post("/login", json={"username": username})
    assert response.status_code == 200, response.text
    return response.cookies[COOKIE]


async def test_login_sets_an_httponly_samesite_lax_session_cookie(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/login", json={"username": "alice"})
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie
    assert response.headers["cache-control"] == "no-store"


async def test_login_rotates_the_session_id_and_the_old_id_is_anonymous(
    client: httpx.AsyncClient,
) -> None:
    first = await login(client)
    second = await login(client)
    assert first != second
    client.cookies.clear()
    response = await client.get("/me", headers=cookie_header(first))
    assert response.status_code == 401


@pytest.mark.parametrize("username", ["", "a b", "x" * 33, "<script>"])
async def test_invalid_username_is_422(client: httpx.AsyncClient, username: str) -> None:
    assert (await client.post("/login", json={"username": username})).status_code == 422


async def test_me_is_401_when_anonymous(client: httpx.AsyncClient) -> None:
    assert (await client.get("/me")).status_code == 401


async def test_me_returns_the_user_privately_and_varies_on_cookie(
    client: httpx.AsyncClient,
) -> None:
    await login(client, "bob")
    response = await client.get("/me")
    assert response.json() == {"username": "bob", "cart": {}}
    assert "private" in response.headers["cache-control"]
    assert "cookie" in response.headers["vary"].lower()


async def test_a_forged_session_cookie_is_anonymous(client: httpx.AsyncClient) -> None:
    await login(client)
    forged = secrets.token_urlsafe(48)
    client.cookies.clear()
    assert (await client.get("/me", headers=cookie_header(forged))).status_code == 401


async def test_cart_needs_a_session(client: httpx.AsyncClient) -> None:
    response = await client.post("/cart/items", json={"sku": "teapot", "qty": 1})
    assert response.status_code == 401


async def test_cart_adds_quantities_per_sku(client: httpx.AsyncClient) -> None:
    await login(client)
    await client.post("/cart/items", json={"sku": "teapot", "qty": 1})
    await client.post("/cart/items", json={"sku": "teapot", "qty": 2})
    await client.post("/cart/items", json={"sku": "mug", "qty": 1})
    assert (await client.get("/me")).json()["cart"] == {"teapot": 3, "mug": 1}


async def test_concurrent_adds_of_different_items_both_persist(client: httpx.AsyncClient) -> None:
    await login(client)
    skus = [f"sku-{n}" for n in range(8)]
    responses = await asyncio.gather(
        *(client.post("/cart/items", json={"sku": sku, "qty": 1}) for sku in skus)
    )
    assert all(r.status_code == 200 for r in responses)
    assert (await client.get("/me")).json()["cart"] == dict.fromkeys(skus, 1)


@pytest.mark.parametrize(
    "item", [{"sku": "a b", "qty": 1}, {"sku": "teapot", "qty": 0}, {"sku": "t", "qty": 1000}]
)
async def test_invalid_cart_item_is_422(client: httpx.AsyncClient, item: dict[str, object]) -> None:
    await login(client)
    assert (await client.post("/cart/items", json=item)).status_code == 422


async def test_logout_makes_the_old_cookie_anonymous(client: httpx.AsyncClient) -> None:
    cookie = await login(client)
    response = await client.post("/logout")
    assert response.status_code == 200
    assert "Max-Age=0" in response.headers["set-cookie"]
    client.cookies.clear()
    assert (await client.get("/me", headers=cookie_header(cookie))).status_code == 401


async def test_logout_everywhere_ends_every_session_of_the_user(
    client: httpx.AsyncClient,
) -> None:
    laptop = await login(client, "dana")
    client.cookies.clear()
    phone = await login(client, "dana")
    response = await client.post("/logout-everywhere")
    assert response.json() == {"revoked": 2}
    client.cookies.clear()
    for cookie in (laptop, phone):
        assert (await client.get("/me", headers=cookie_header(cookie))).status_code == 401


async def test_sixth_login_in_a_minute_from_one_client_is_429(client: httpx.AsyncClient) -> None:
    statuses = [
        (await client.post("/login", json={"username": f"user{n}"})).status_code for n in range(6)
    ]
    assert statuses == [200] * 5 + [429]


async def test_login_fails_closed_while_products_fail_open_when_valkey_is_down(
    private_server: EmbeddedValkey,
) -> None:
    settings = make_settings(private_server.url, command_timeout=0.2)
    async with in_process(patient_config(private_server.url, valkey=settings)) as (_, client):
        private_server.stop()
        login_response = await client.post("/login", json={"username": "alice"})
        product = await client.get("/products/1")
    assert login_response.status_code == 503
    assert "retry-after" in login_response.headers
    assert product.status_code == 200
