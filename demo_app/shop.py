"""Products and search: the cached, tagged, conditional and rate-limited part of the demo.

* ``GET /products`` and ``GET /products/{id}`` are public and shared-cacheable
  (``s-maxage`` + ``stale-while-revalidate``), carry a ``Cache-Tag`` that the cache keeps as
  surrogate keys (and strips), and a version-based ETag.
* ``PUT /products/{id}`` needs ``If-Match`` (428 without, 412 when stale), updates the row
  only if its version is unchanged, then invalidates the tag ``product:{id}``.
* ``GET /api/search`` is limited to 10 requests per 10 s per client; its database query is
  cached for 30 s by the function cache (tag ``search``, invalidated by every update).
"""

# No `from __future__ import annotations` here: FastAPI must resolve the annotations of
# endpoints and dependencies defined inside shop_router(), which name local closures.
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cachemw.cache import CacheInvalidator, FunctionCache
from cachemw.headers.fastapi import cache_policy, condition
from cachemw.metrics import Metrics
from cachemw.ratelimit.fastapi import RateLimiter
from cachemw.valkey import ValkeyError
from demo_app.db import Product, ProductChanges, ShopDatabase

__all__ = ["ProductUpdate", "etag_for_version", "product_etag", "shop_router"]

ProductId = Annotated[int, Path(ge=1, le=2**31 - 1)]
INVALIDATION_ERRORS = "demo_invalidation_errors_total"
SEARCH_TAG = "search"

# Browsers revalidate every time (max-age=0: cheap 304s from the shared cache, never an old
# copy after an update); the shared cache keeps it 60 s and may serve it stale for 30 s
# more while one background request refreshes it (RFC 5861).
PRODUCT_POLICY = cache_policy(public=True, max_age=0, s_maxage=60, stale_while_revalidate=30)


class ProductUpdate(BaseModel):
    """Any of the product's fields; unknown fields are a 422, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    price: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)
    description: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def has_a_change(self) -> Self:
        if self.name is None and self.price is None and self.description is None:
            raise ValueError("give at least one of name, price, description")
        return self


def etag_for_version(version: int) -> str:
    """A strong ETag from the row version: it changes with every update (RFC 9110 §8.8.3)."""
    return f'"v{version}"'


def product_etag(product: Product) -> str:
    return etag_for_version(product.version)


def _tags(products: list[Product]) -> str:
    return " ".join(["products", *(f"product:{p.id}" for p in products)])


def shop_router(
    db: ShopDatabase,
    *,
    invalidator: CacheInvalidator,
    functions: FunctionCache,
    limiter: RateLimiter,
    metrics: Metrics,
) -> APIRouter:
    router = APIRouter()
    metrics.describe(INVALIDATION_ERRORS, "Product updates whose cache invalidation failed")

    # Cache-aside for the query itself (msgspec-typed, keyed by the text): the endpoint still
    # runs, so the rate limit still counts every search.
    @functions.cached(ttl=30, key=("text",), tags=(SEARCH_TAG,))
    async def search_products(text: str) -> list[Product]:
        return await db.search(text)

    async def current_version(product_id: ProductId) -> int | None:
        return await db.product_version(product_id)

    async def current_etag(
        version: Annotated[int | None, Depends(current_version)],
    ) -> str | None:
        return None if version is None else etag_for_version(version)

    @router.get("/products", dependencies=[PRODUCT_POLICY])
    async def list_products(response: Response) -> list[dict[str, Any]]:
        products = await db.products()
        response.headers["cache-tag"] = _tags(products)
        return [product.to_json() for product in products]

    @router.get("/products/{product_id}", dependencies=[PRODUCT_POLICY])
    async def read_product(product_id: ProductId, response: Response) -> dict[str, Any]:
        product = await db.product(product_id)
        if product is None:
            raise HTTPException(status_code=404, detail="no such product")
        response.headers["etag"] = product_etag(product)
        response.headers["cache-tag"] = _tags([product])
        return product.to_json()

    # `condition` answers 412 before the endpoint runs when If-Match names an old version;
    # the UPDATE re-checks the version, so a race between two writers cannot lose an update.
    @router.put("/products/{product_id}", dependencies=[condition(etag=current_etag)])
    async def update_product(
        product_id: ProductId,
        update: ProductUpdate,
        request: Request,
        response: Response,
        version: Annotated[int | None, Depends(current_version)],
    ) -> dict[str, Any]:
        if version is None:
            raise HTTPException(status_code=404, detail="no such product")
        if "if-match" not in request.headers:
            # RFC 6585 §3: require the conditional request, so no client overwrites blindly.
            raise HTTPException(status_code=428, detail="send If-Match with the ETag from GET")
        changes = ProductChanges(
            name=update.name, price=update.price, description=update.description
        )
        if not await db.update_product(product_id, changes, expected_version=version):
            raise HTTPException(status_code=412, detail="the product changed meanwhile")
        try:
            await invalidator.invalidate_tags(f"product:{product_id}", SEARCH_TAG)
        except ValkeyError:
            # The cache fails open; the entry expires by itself within s-maxage.
            metrics.incr(INVALIDATION_ERRORS)
        product = await db.product(product_id)
        assert product is not None
        response.headers["etag"] = product_etag(product)
        return product.to_json()

    @router.get("/api/search", dependencies=[Depends(limiter.limit("10/10s", name="search"))])
    async def search(q: Annotated[str, Query(max_length=100)] = "") -> dict[str, Any]:
        products = await search_products(q)
        return {"query": q, "results": [product.to_json() for product in products]}

    return router
