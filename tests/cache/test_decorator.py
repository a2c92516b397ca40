"""The function cache: cache-aside with single-flight, typed results, tags, identity guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from fastapi import Depends, FastAPI, Request

from cachemw.cache import CacheInvalidator
from cachemw.cache.decorator import FunctionCache, cached
from cachemw.valkey import Valkey, ValkeySettings
from cachemw.valkey.embedded import EmbeddedValkey


class Product(msgspec.Struct):
    id: int
    name: str
    tags: list[str]


@pytest.fixture
async def functions(valkey: Valkey) -> AsyncIterator[FunctionCache]:
    cache = FunctionCache(valkey)
    yield cache
    await cache.aclose()


async def test_result_is_computed_once_per_key(functions: FunctionCache) -> None:
    calls: list[int] = []

    @functions.cached(ttl=60, key=("product_id",))
    async def load(product_id: int) -> Product:
        calls.append(product_id)
        return Product(id=product_id, name=f"p{product_id}", tags=["a"])

    first = await load(1)
    second = await load(1)
    other = await load(2)
    assert first == second == Product(id=1, name="p1", tags=["a"])
    assert other.id == 2
    assert calls == [1, 2]


async def test_each_caller_gets_its_own_decoded_value(functions: FunctionCache) -> None:
    @functions.cached(ttl=60, key=("product_id",))
    async def load(product_id: int) -> Product:
        return Product(id=product_id, name="x", tags=[])

    await load(1)
    one, two = await load(1), await load(1)
    one.tags.append("mutated")
    assert two.tags == []


async def test_parameters_outside_the_key_do_not_split_entries(functions: FunctionCache) -> None:
    calls = 0

    @functions.cached(ttl=60, key=("product_id",))
    async def load(product_id: int, db: object = None) -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"id": product_id}

    await load(1, db=object())
    await load(1, db=object())
    assert calls == 1


async def test_concurrent_calls_across_two_processes_run_the_function_once(
    valkey_url: str,
) -> None:
    calls = 0
    instances = [FunctionCache(Valkey(ValkeySettings(url=valkey_url, command_timeout=2.0)))]
    instances.append(FunctionCache(Valkey(ValkeySettings(url=valkey_url, command_timeout=2.0))))
    loaders = []
    for instance in instances:

        @instance.cached(ttl=60, key=("product_id",))
        async def load(product_id: int) -> int:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.2)
            return product_id * 10

        loaders.append(load)
    try:
        results = await asyncio.gather(*(loaders[i % 2](7) for i in range(100)))
    finally:
        for instance in instances:
            await instance.aclose()
            await instance.store.valkey.aclose()
    assert results == [70] * 100
    assert calls == 1


async def test_tags_invalidate_function_results(functions: FunctionCache, valkey: Valkey) -> None:
    calls = 0

    @functions.cached(
        ttl=60, key=("product_id",), tags=lambda product_id: [f"product-{product_id}"]
    )
    async def load(product_id: int) -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await load(1) == 1
    assert await load(1) == 1
    await CacheInvalidator(valkey).invalidate_tags("product-1")
    assert await load(1) == 2


@pytest.mark.parametrize("name", ["user", "current_user", "session", "request", "token"])
def test_identity_parameter_outside_the_key_is_refused(functions: FunctionCache, name: str) -> None:
    namespace: dict[str, object] = {}
    exec(  # building a function with a parameter of the given name
        f"async def orders({name}: object, page: int) -> list[int]:\n    return []",
        namespace,
    )
    with pytest.raises(ValueError, match=f"parameter '{name}' looks like the caller's identity"):
        functions.cached(ttl=60, key=("page",))(namespace["orders"])  # type: ignore[arg-type]


def test_request_annotated_parameter_outside_the_key_is_refused(functions: FunctionCache) -> None:
    async def orders(incoming: Request, page: int) -> list[int]:
        return []

    with pytest.raises(ValueError, match="incoming"):
        functions.cached(ttl=60, key=("page",))(orders)


async def test_identity_may_be_keyed_or_declared_irrelevant(functions: FunctionCache) -> None:
    @functions.cached(ttl=60, key=("user_id", "page"))
    async def orders(user_id: int, page: int) -> list[int]:
        return [user_id, page]

    @functions.cached(ttl=60, key=("page",), ignores_identity=("user",))
    async def catalogue(user: object, page: int) -> list[int]:
        return [page]

    assert await orders(1, 2) == [1, 2]
    assert await orders(3, 2) == [3, 2]
    assert await catalogue(object(), 5) == [5]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"ttl": 0}, "ttl"), ({"ttl": 60, "key": ("missing",)}, "not parameters")],
)
def test_invalid_options_are_refused(
    functions: FunctionCache, options: dict[str, object], message: str
) -> None:
    async def load(product_id: int) -> int:
        return product_id

    with pytest.raises(ValueError, match=message):
        cached(functions, **options)(load)


def test_function_without_return_annotation_is_refused(functions: FunctionCache) -> None:
    async def load(product_id: int):  # type: ignore[no-untyped-def]
        return product_id

    with pytest.raises(ValueError, match="return annotation"):
        functions.cached(ttl=60, key=("product_id",))(load)


async def test_function_cache_fails_open(private_server: EmbeddedValkey) -> None:
    valkey = Valkey(ValkeySettings(url=private_server.url, command_timeout=0.05))
    functions = FunctionCache(valkey)

    @functions.cached(ttl=60, key=("x",))
    async def double(x: int) -> int:
        return x * 2

    try:
        private_server.stop()
        assert [await double(i) for i in range(5)] == [0, 2, 4, 6, 8]
    finally:
        await functions.aclose()
        await valkey.aclose()


async def test_cached_function_works_as_a_fastapi_dependency(functions: FunctionCache) -> None:
    calls = 0

    @functions.cached(ttl=60, key=("product_id",))
    async def product(product_id: int) -> Product:
        nonlocal calls
        calls += 1
        return Product(id=product_id, name="dep", tags=[])

    app = FastAPI()

    @app.get("/products/{product_id}")
    async def show(item: Product = Depends(product)) -> dict[str, object]:  # noqa: B008
        return {"id": item.id, "name": item.name}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        first = await client.get("/products/3")
        second = await client.get("/products/3")
    assert first.json() == second.json() == {"id": 3, "name": "dep"}
    assert calls == 1
