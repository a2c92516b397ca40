"""The mixed load: virtual users on httpx, each loop bounded in count and in time.

Users and what they do (one HTTP client each, sequential requests with a short pause):

* readers: hot product reads (mostly cache hits); missers: reads with a unique query
  (always misses); updaters: read then ``PUT`` with ``If-Match`` (the app invalidates the tag);
* shoppers: log in (session rotate), write one cart field per request, log in again every
  ten writes (rotation must keep the cart); a 401 (session gone) means log in again;
* searchers: one identity (127.0.0.1) on the fail-open search limit, faster than it allows;
* a login hammer: one username on the fail-closed login limit, faster than it allows.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx

from bench.soak.app import WORKER_HEADER
from bench.soak.samples import Admission, CartWrite, ProductRead, Sample, SoakRecord, Update

__all__ = ["LoadShape", "VirtualUsers"]

HOT_PRODUCTS = 20
ALL_PRODUCTS = 200
REQUEST_TIMEOUT = 5.0
RELOGIN_EVERY = 10
RECONNECT_EVERY = 20
CART_READ_ATTEMPTS = 20
CART_READ_PAUSE = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadShape:
    readers: int = 6
    missers: int = 2
    updaters: int = 2
    shoppers: int = 8
    searchers: int = 2
    login_hammers: int = 1
    pause: float = 0.05  # seconds between one user's requests
    max_requests_per_user: int = 20_000

    def __post_init__(self) -> None:
        for name in ("readers", "missers", "updaters", "shoppers", "searchers", "login_hammers"):
            value = getattr(self, name)
            if not 0 <= value <= 200:
                raise ValueError(f"{name} must be in 0..200, got {value}")
        if not 0 <= self.pause <= 1:
            raise ValueError(f"pause must be in 0..1 s, got {self.pause}")

    @property
    def users(self) -> int:
        return (
            self.readers
            + self.missers
            + self.updaters
            + self.shoppers
            + self.searchers
            + self.login_hammers
        )


def _worker(response: httpx.Response) -> int | None:
    value = response.headers.get(WORKER_HEADER)
    return int(value) if value and value.isdigit() else None


class VirtualUsers:
    """Runs the users against ``base_url`` until ``deadline`` (``time.monotonic()``)."""

    def __init__(self, base_url: str, shape: LoadShape, record: SoakRecord, seed: int) -> None:
        self.base_url = base_url
        self.shape = shape
        self.record = record
        self.random = random.Random(seed)
        self.unique = itertools.count()

    async def request(
        self, client: httpx.AsyncClient, kind: str, method: str, url: str, **kwargs: object
    ) -> httpx.Response | None:
        if next(self.unique) % RECONNECT_EVERY == 0:
            # A new connection now and then, so the kernel spreads users over both workers
            # (keep-alive connections stay with the worker that accepted them).
            kwargs["headers"] = {**kwargs.get("headers", {}), "connection": "close"}  # type: ignore[dict-item]
        started = time.time()
        try:
            response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError:
            self.record.samples.append(
                Sample(kind=kind, started=started, ended=time.time(), status=0)
            )
            return None
        cache_status = response.headers.get("cache-status", "")
        self.record.samples.append(
            Sample(
                kind=kind,
                started=started,
                ended=time.time(),
                status=response.status_code,
                worker=_worker(response),
                cache_hit="; hit" in cache_status,
                detail=response.text[:160] if response.status_code >= 500 else "",
            )
        )
        return response

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=REQUEST_TIMEOUT)

    async def run(self, deadline: float, *, before_carts: Callable[[], Awaitable[None]]) -> None:
        """Run every user until ``deadline``, await ``before_carts`` (the driver waits for
        Valkey to be back), then read each shopper's cart with that shopper's own cookie."""
        shape = self.shape
        shoppers = [f"shopper{i}" for i in range(shape.shoppers)]
        roles: list[Callable[[httpx.AsyncClient], Awaitable[None]]] = []
        roles += [self.reader] * shape.readers
        roles += [self.misser] * shape.missers
        roles += [self.updater] * shape.updaters
        roles += [self.shopper_for(user) for user in shoppers]
        roles += [self.searcher] * shape.searchers
        roles += [self.login_hammer] * shape.login_hammers
        async with AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(self.client()) for _ in roles]
            async with asyncio.TaskGroup() as group:
                for role, client in zip(roles, clients, strict=True):
                    group.create_task(self.loop(role, client, deadline))
            await before_carts()
            first_shopper = shape.readers + shape.missers + shape.updaters
            for offset, user in enumerate(shoppers):
                await self.read_cart(user, clients[first_shopper + offset])

    async def loop(
        self,
        step: Callable[[httpx.AsyncClient], Awaitable[None]],
        client: httpx.AsyncClient,
        deadline: float,
    ) -> None:
        for _ in range(self.shape.max_requests_per_user):
            if time.monotonic() >= deadline:
                return
            await step(client)
            await asyncio.sleep(self.shape.pause)

    async def read_product(self, client: httpx.AsyncClient, kind: str, url: str) -> None:
        started = time.time()
        response = await self.request(client, kind, "GET", url)
        if response is not None and response.status_code == 200:
            body = response.json()
            self.record.reads.append(
                ProductRead(product_id=body["id"], version=body["version"], started=started)
            )

    async def reader(self, client: httpx.AsyncClient) -> None:
        product_id = self.random.randint(1, HOT_PRODUCTS)
        await self.read_product(client, "hot_read", f"/products/{product_id}")

    async def misser(self, client: httpx.AsyncClient) -> None:
        product_id = self.random.randint(1, ALL_PRODUCTS)
        url = f"/products/{product_id}?unique={next(self.unique)}"
        await self.read_product(client, "miss_read", url)

    async def updater(self, client: httpx.AsyncClient) -> None:
        product_id = self.random.randint(1, HOT_PRODUCTS)
        current = await self.request(client, "update_read", "GET", f"/products/{product_id}")
        if current is None or current.status_code != 200 or "etag" not in current.headers:
            return
        price = round(self.random.uniform(1, 1000), 2)
        response = await self.request(
            client,
            "update",
            "PUT",
            f"/products/{product_id}",
            json={"price": price},
            headers={"if-match": current.headers["etag"]},
        )
        if response is not None and response.status_code == 200:
            body = response.json()
            self.record.updates.append(
                Update(
                    product_id=product_id,
                    version=body["version"],
                    acknowledged_at=time.time(),
                    invalidated=body["invalidated"],
                )
            )
        await asyncio.sleep(0.2)  # updates are rarer than reads

    def shopper_for(self, user: str) -> Callable[[httpx.AsyncClient], Awaitable[None]]:
        writes = itertools.count()
        logged_in = [False]

        async def shopper(client: httpx.AsyncClient) -> None:
            if not logged_in[0]:
                response = await self.request(client, "login", "POST", f"/login/{user}")
                logged_in[0] = response is not None and response.status_code == 200
                if not logged_in[0]:
                    await asyncio.sleep(0.2)
                return
            number = next(writes)
            sku = f"{user}_{number}"
            response = await self.request(client, "cart", "POST", f"/cart/{sku}")
            if response is None:
                return
            if response.status_code == 200:
                self.record.cart_writes.append(
                    CartWrite(user=user, sku=sku, acknowledged_at=time.time())
                )
            elif response.status_code == 401:  # the session is gone (Valkey restarted)
                logged_in[0] = False
            if number % RELOGIN_EVERY == RELOGIN_EVERY - 1:
                logged_in[0] = False  # log in again: rotation must keep the cart

        return shopper

    async def searcher(self, client: httpx.AsyncClient) -> None:
        response = await self.request(client, "search", "GET", "/search?q=soak")
        if response is not None and response.status_code == 200:
            body = response.json()
            self.record.admissions.setdefault("search", []).append(
                Admission(
                    identity="127.0.0.1",
                    earliest=body["entered"],
                    latest=body["admitted_at"],
                    checked="ratelimit" in response.headers,
                )
            )

    async def login_hammer(self, client: httpx.AsyncClient) -> None:
        started = time.time()
        response = await self.request(client, "login", "POST", "/login/hammer")
        if response is not None and response.status_code == 200:
            self.record.admissions.setdefault("login", []).append(
                Admission(
                    identity="hammer",
                    earliest=started,
                    latest=time.time(),
                    checked="ratelimit" in response.headers,
                )
            )
        await asyncio.sleep(0.05)

    async def read_cart(self, user: str, client: httpx.AsyncClient) -> None:
        """The shopper's cart as the app sees it now: a set, None when its session is gone
        (401); left out (unreadable) if the app never answers 200/401 within the retries."""
        for _ in range(CART_READ_ATTEMPTS):
            response = await self.request(client, "me", "GET", "/me")
            if response is not None and response.status_code == 200:
                self.record.carts_found[user] = frozenset(response.json()["cart"])
                return
            if response is not None and response.status_code == 401:
                self.record.carts_found[user] = None
                return
            await asyncio.sleep(CART_READ_PAUSE)
