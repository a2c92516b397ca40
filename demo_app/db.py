"""The shop's database: stdlib SQLite, seeded on start, read through a worker thread.

sqlite3 is blocking, so every query runs in a worker thread (``asyncio.to_thread``) and one
lock serialises use of the single connection. Reads of product data then sleep for
``read_delay`` seconds: a stand-in for the 20-50 ms a real query over the network costs, so
the cache's effect is visible (a hit skips it). Version lookups (for ETags) and writes are
not delayed.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["PRODUCT_COUNT", "Product", "ProductChanges", "ShopDatabase"]

PRODUCT_COUNT = 20
_ADJECTIVES = ("Small", "Large", "Blue", "Red", "Quiet", "Rapid", "Sturdy", "Light", "Warm", "Cool")
_NOUNS = ("Teapot", "Lamp", "Backpack", "Notebook", "Kettle", "Chair", "Mug", "Scarf", "Clock")
_LIKE_SPECIALS = re.compile(r"([\\%_])")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    price REAL NOT NULL,
    description TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    logins INTEGER NOT NULL DEFAULT 0,
    last_login REAL NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    name: str
    price: float
    description: str
    version: int

    def to_json(self) -> dict[str, Any]:
        """The public representation: the version travels as the ETag, not in the body."""
        return {
            "id": self.id,
            "name": self.name,
            "price": self.price,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductChanges:
    name: str | None = None
    price: float | None = None
    description: str | None = None

    def columns(self) -> dict[str, object]:
        values = {"name": self.name, "price": self.price, "description": self.description}
        return {column: value for column, value in values.items() if value is not None}


def seed_products() -> list[tuple[int, str, float, str]]:
    """Ids 1..20 with deterministic names and prices."""
    rows = []
    for product_id in range(1, PRODUCT_COUNT + 1):
        adjective = _ADJECTIVES[product_id % len(_ADJECTIVES)]
        noun = _NOUNS[product_id % len(_NOUNS)]
        price = round(4.5 + product_id * 1.75, 2)
        description = f"A {adjective.lower()} {noun.lower()}, item {product_id} of the demo shop."
        rows.append((product_id, f"{adjective} {noun}", price, description))
    return rows


class ShopDatabase:
    """One SQLite connection (in memory by default), used from worker threads under a lock."""

    __slots__ = ("_connection", "_lock", "read_delay")

    def __init__(self, path: str = ":memory:", *, read_delay: float = 0.03) -> None:
        if not 0 <= read_delay <= 5:
            raise ValueError(f"read_delay must be 0..5 seconds, got {read_delay!r}")
        self.read_delay = read_delay
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.executescript(_SCHEMA)
        self._seed()

    def _seed(self) -> None:
        with self._lock:
            self._connection.executemany(
                "INSERT OR IGNORE INTO products (id, name, price, description) VALUES (?, ?, ?, ?)",
                seed_products(),
            )

    def _run(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            cursor = self._connection.execute(sql, params)
            return cursor.fetchall()

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        with self._lock:
            return self._connection.execute(sql, params).rowcount

    async def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        rows = await asyncio.to_thread(self._run, sql, params)
        if self.read_delay:
            await asyncio.sleep(self.read_delay)  # the documented artificial query latency
        return rows

    async def product(self, product_id: int) -> Product | None:
        rows = await self._query(
            "SELECT id, name, price, description, version FROM products WHERE id = ?",
            (product_id,),
        )
        return Product(*rows[0]) if rows else None

    async def products(self) -> list[Product]:
        rows = await self._query(
            "SELECT id, name, price, description, version FROM products ORDER BY id"
        )
        return [Product(*row) for row in rows]

    async def search(self, text: str, *, limit: int = 20) -> list[Product]:
        pattern = "%" + _LIKE_SPECIALS.sub(r"\\\1", text.lower()) + "%"
        rows = await self._query(
            "SELECT id, name, price, description, version FROM products "
            "WHERE lower(name) LIKE ? ESCAPE '\\' OR lower(description) LIKE ? ESCAPE '\\' "
            "ORDER BY id LIMIT ?",
            (pattern, pattern, limit),
        )
        return [Product(*row) for row in rows]

    async def product_version(self, product_id: int) -> int | None:
        """The row's version (cheap: primary-key lookup, no artificial delay)."""
        rows = await asyncio.to_thread(
            self._run, "SELECT version FROM products WHERE id = ?", (product_id,)
        )
        return int(rows[0][0]) if rows else None

    async def update_product(
        self, product_id: int, changes: ProductChanges, *, expected_version: int
    ) -> bool:
        """Apply ``changes`` only if the row is still at ``expected_version``.

        The version check is inside the UPDATE, so two writers that both passed the
        If-Match check cannot both win: the second one updates nothing.
        """
        columns = changes.columns()
        assignments = ", ".join(f"{column} = ?" for column in columns)
        sql = (
            f"UPDATE products SET {assignments}, version = version + 1 WHERE id = ? AND version = ?"
        )
        params = (*columns.values(), product_id, expected_version)
        return await asyncio.to_thread(self._write, sql, params) == 1

    async def record_login(self, username: str, *, now: float) -> int:
        """Count a login for ``username`` (the demo's stand-in for a user table)."""
        await asyncio.to_thread(
            self._write,
            "INSERT INTO users (username, logins, last_login) VALUES (?, 1, ?) "
            "ON CONFLICT(username) DO UPDATE SET logins = logins + 1, last_login = ?",
            (username, now, now),
        )
        rows = await asyncio.to_thread(
            self._run, "SELECT logins FROM users WHERE username = ?", (username,)
        )
        return int(rows[0][0])

    async def recent_users(self, *, limit: int = 100) -> list[str]:
        rows = await asyncio.to_thread(
            self._run, "SELECT username FROM users ORDER BY last_login DESC LIMIT ?", (limit,)
        )
        return [str(row[0]) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._connection.close()
