"""Every Python example in README.md runs here, and does what the README says it does.

Each fenced ``python`` block starts with ``# example: <name>``. The examples read their Valkey
from the environment (``ValkeySettings.from_env()``), so the tests point ``VALKEY_URL`` at the
real test servers; nothing else in the code is changed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI, Response

from cachemw.cache import CacheMiddleware, FunctionCache
from cachemw.headers import HeadersMiddleware
from cachemw.headers.fastapi import cache_policy
from cachemw.valkey import Valkey
from cachemw.valkey.embedded import EmbeddedValkey
from cachemw.valkey.url import parse_valkey_url
from tests.demo.server import REPO

BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"# example: ([a-z-]+)\n")
TESTED = {
    "cache-fastapi",
    "cache-starlette",
    "policies",
    "invalidation",
    "function-cache",
    "sessions",
    "ratelimits",
    "connecting",
    "production",
    "metrics",
    "failure",
}


def readme_examples() -> dict[str, str]:
    examples: dict[str, str] = {}
    for code in BLOCK.findall((REPO / "README.md").read_text(encoding="utf-8")):
        marker = MARKER.match(code)
        assert marker is not None, f"README python block without '# example: <name>':\n{code}"
        assert marker.group(1) not in examples, f"two README examples named {marker.group(1)}"
        examples[marker.group(1)] = code
    return examples


class Example:
    """One README example, executed as a module; closes what it opened."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.namespace: dict[str, Any] = {"__name__": f"readme_{name.replace('-', '_')}"}
        code = compile(readme_examples()[name], f"README.md#{name}", "exec")
        exec(code, self.namespace)  # the README's own example

    def __getitem__(self, key: str) -> Any:
        return self.namespace[key]

    def client(self, *, https: bool = False, peer: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self["app"], client=(peer, 40000))
        scheme = "https" if https else "http"
        return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://shop.test")

    async def aclose(self) -> None:
        node = getattr(self.namespace.get("app"), "middleware_stack", None)
        while node is not None:
            if isinstance(node, CacheMiddleware):
                await node.aclose()
            node = getattr(node, "app", None)
        for value in self.namespace.values():
            if isinstance(value, FunctionCache):
                await value.aclose()
        for value in self.namespace.values():
            if isinstance(value, Valkey):
                await value.aclose()


@pytest.fixture
def use_valkey(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_VALKEY_URL", raising=False)
    monkeypatch.setenv("CACHEMW_COMMAND_TIMEOUT", "2")


@pytest.fixture
async def example(
    request: pytest.FixtureRequest,
    valkey_url: str,
    monkeypatch: pytest.MonkeyPatch,
    use_valkey: None,
) -> AsyncIterator[Example]:
    monkeypatch.setenv("VALKEY_URL", valkey_url)
    loaded = Example(request.param)
    try:
        yield loaded
    finally:
        await loaded.aclose()


def is_hit(response: httpx.Response) -> bool:
    return "hit" in [p.strip() for p in response.headers.get("cache-status", "").split(";")]


def test_every_python_block_in_the_readme_is_a_tested_example() -> None:
    assert set(readme_examples()) == TESTED


@pytest.mark.parametrize("example", ["cache-fastapi"], indirect=True)
async def test_readme_fastapi_cache_serves_the_second_get_from_valkey(example: Example) -> None:
    async with example.client() as client:
        first = await client.get("/articles/hello-world")
        second = await client.get("/articles/hello-world")
    assert "stored" in first.headers["cache-status"]
    assert is_hit(second), second.headers
    assert "age" in second.headers
    assert second.json() == {"slug": "hello-world", "title": "Hello World"}


@pytest.mark.parametrize("example", ["cache-starlette"], indirect=True)
async def test_readme_starlette_cache_applies_the_decorated_policy(example: Example) -> None:
    async with example.client() as client:
        first = await client.get("/")
        second = await client.get("/")
    assert first.headers["cache-control"] == "public, max-age=60"
    assert is_hit(second), second.headers


@pytest.mark.parametrize("example", ["policies"], indirect=True)
async def test_readme_policies_answer_304_and_412_and_invalidate_by_tag(
    example: Example,
) -> None:
    async with example.client() as client:
        first = await client.get("/articles/intro")
        cached = await client.get("/articles/intro")
        not_modified = await client.get("/articles/intro", headers={"if-none-match": '"v1"'})
        stale = await client.put("/articles/intro?title=Old", headers={"if-match": '"v0"'})
        renamed = await client.put("/articles/intro?title=New", headers={"if-match": '"v1"'})
        after = await client.get("/articles/intro")
    assert first.headers["etag"] == '"v1"'
    assert "cache-tag" not in first.headers
    assert is_hit(cached), cached.headers
    assert not_modified.status_code == 304
    assert (stale.status_code, renamed.status_code) == (412, 200)
    assert not is_hit(after), after.headers
    assert after.json()["title"] == "New"
    assert after.headers["etag"] == '"v2"'


@pytest.mark.parametrize("example", ["invalidation"], indirect=True)
async def test_readme_invalidation_removes_by_tag_url_and_prefix(
    example: Example, valkey_url: str
) -> None:
    site = FastAPI()
    site.add_middleware(HeadersMiddleware)
    site.add_middleware(CacheMiddleware, valkey=example["valkey"])

    @site.get("/articles/{slug}", dependencies=[cache_policy(public=True, s_maxage=60)])
    async def article(slug: str, response: Response) -> dict[str, str]:
        response.headers["Cache-Tag"] = f"article:{slug}"
        return {"slug": slug}

    transport = httpx.ASGITransport(app=site)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        for slug in ("a", "b", "a", "b"):
            await client.get(f"/articles/{slug}")
        assert await example["forget_article"]("a") >= 1
        assert not is_hit(await client.get("/articles/a"))
        assert is_hit(await client.get("/articles/b"))
        assert await example["forget_all_articles"]() == 2
        assert not is_hit(await client.get("/articles/b"))


@pytest.mark.parametrize("example", ["function-cache"], indirect=True)
async def test_readme_function_cache_runs_the_query_once_until_its_tag_is_invalidated(
    example: Example,
) -> None:
    load_product = example["load_product"]
    first = await load_product(7)
    again = await load_product(product_id=7)
    assert first == again == example["Product"](id=7, name="Product 7")
    assert example["QUERIES"] == [7]
    await example["rename_product"](7)
    await load_product(7)
    assert example["QUERIES"] == [7, 7]


@pytest.mark.parametrize("example", ["function-cache"], indirect=True)
async def test_readme_function_cache_refuses_a_key_that_ignores_the_caller(
    example: Example,
) -> None:
    async def load_cart(user: str) -> list[str]:
        return [user]

    with pytest.raises(ValueError, match="identity"):
        example["functions"].cached(ttl=60)(load_cart)


@pytest.mark.parametrize("example", ["sessions"], indirect=True)
async def test_readme_sessions_log_in_fill_a_cart_and_log_out(example: Example) -> None:
    async with example.client(https=True) as client:
        login = await client.post("/login?username=alice")
        me = await client.get("/me")
        await client.post("/cart/teapot")
        cart = await client.post("/cart/teapot")
        await client.post("/logout")
        after_logout = await client.get("/me")
    set_cookie = login.headers["set-cookie"]
    assert set_cookie.startswith("__Host-sid=")
    assert all(attr in set_cookie for attr in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"))
    assert me.json() == {"user": "alice", "theme": "dark"}
    assert cart.json() == {"teapot": 2}
    assert after_logout.status_code == 401


@pytest.mark.parametrize("example", ["sessions"], indirect=True)
async def test_readme_logout_everywhere_ends_the_users_other_sessions(example: Example) -> None:
    async with example.client(https=True) as laptop, example.client(https=True) as phone:
        await laptop.post("/login?username=bob")
        await phone.post("/login?username=bob")
        revoked = await phone.post("/logout-everywhere")
        assert revoked.json() == {"revoked": 2}
        assert (await laptop.get("/me")).status_code == 401


@pytest.mark.parametrize("example", ["ratelimits"], indirect=True)
async def test_readme_rate_limits_count_the_client_behind_the_trusted_proxy(
    example: Example,
) -> None:
    async with example.client(peer="10.0.0.5") as proxy:
        first_client = {"x-forwarded-for": "198.51.100.1"}
        statuses = [
            (await proxy.get("/search", headers=first_client)).status_code for _ in range(11)
        ]
        other_client = await proxy.get("/search", headers={"x-forwarded-for": "198.51.100.2"})
        logins = [(await proxy.post("/login")).status_code for _ in range(6)]
    assert statuses == [200] * 10 + [429]
    assert other_client.status_code == 200
    assert other_client.headers["ratelimit-policy"] == '"search";q=10;w=10'
    assert logins == [200] * 5 + [429]


async def test_readme_rate_limits_fail_closed_on_login_and_open_on_search(
    private_server: EmbeddedValkey, monkeypatch: pytest.MonkeyPatch, use_valkey: None
) -> None:
    monkeypatch.setenv("VALKEY_URL", private_server.url)
    monkeypatch.setenv("CACHEMW_COMMAND_TIMEOUT", "0.2")
    example = Example("ratelimits")
    try:
        private_server.stop()
        async with example.client() as client:
            login = await client.post("/login")
            search = await client.get("/search")
    finally:
        await example.aclose()
    assert login.status_code == 503
    assert "retry-after" in login.headers
    assert search.status_code == 200


async def test_readme_connection_urls_mean_what_the_table_says(use_valkey: None) -> None:
    example = Example("connecting")
    try:
        assert parse_valkey_url(example["local"].url).mode == "standalone"
        assert parse_valkey_url(example["cluster"].url).mode == "cluster"
        assert len(parse_valkey_url(example["cluster"].url).hosts) == 3
        tls = parse_valkey_url(example["tls"].url)
        assert tls.tls
        assert tls.tls_ca_certs == "/etc/ssl/valkey-ca.pem"
        assert not example["valkey"].is_cluster
    finally:
        await example.aclose()


async def test_readme_production_layout_keeps_sessions_on_the_state_instance(
    valkey_url: str,
    private_server: EmbeddedValkey,
    monkeypatch: pytest.MonkeyPatch,
    use_valkey: None,
) -> None:
    monkeypatch.setenv("VALKEY_URL", valkey_url)
    monkeypatch.setenv("STATE_VALKEY_URL", private_server.url)
    example = Example("production")
    try:
        async with example.client(https=True) as client:
            first = await client.get("/account")
            second = await client.get("/account")
            await client.get("/products/1")
            product = await client.get("/products/1")
    finally:
        await example.aclose()
    state = redis.Redis.from_url(private_server.url)
    try:
        state_keys = [key.decode() for key in state.scan_iter()]
    finally:
        state.close()
    assert client.cookies  # the session cookie went with the product requests
    assert is_hit(product)  # allow_cookies: the product does not depend on who asks
    assert (first.json(), second.json()) == ({"visits": 1}, {"visits": 2})
    assert not is_hit(second), second.headers
    assert "cookie" in second.headers["vary"].lower()
    assert any(":sess:" in key for key in state_keys)


@pytest.mark.parametrize("example", ["metrics"], indirect=True)
async def test_readme_metrics_render_prometheus_text(example: Example) -> None:
    async with example.client() as client:
        await client.get("/metrics")
        response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE cachemw_valkey_breaker_open gauge" in response.text
    assert "cachemw_valkey_breaker_open 0" in response.text
    assert "cachemw_cache_miss_total" in response.text


async def test_readme_failure_example_serves_the_cache_route_and_503s_the_session_route(
    private_server: EmbeddedValkey, monkeypatch: pytest.MonkeyPatch, use_valkey: None
) -> None:
    monkeypatch.setenv("VALKEY_URL", private_server.url)
    example = Example("failure")
    try:
        private_server.stop()
        async with example.client(https=True) as client:
            catalogue = await client.get("/catalogue")
            session_cookie = {"cookie": f"__Host-sid={secrets.token_urlsafe(48)}"}
            basket = await client.get("/basket", headers=session_cookie)
    finally:
        await example.aclose()
    assert catalogue.status_code == 200
    assert catalogue.json() == ["teapot", "kettle"]
    assert basket.status_code == 503
    assert "retry-after" in basket.headers
