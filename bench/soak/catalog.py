"""The soak app's product table: SQLite in one file, shared by both uvicorn workers.

An in-memory dict would give each worker its own catalog, so an update on one worker would
never be seen by the other; one SQLite file (WAL) is the smallest shared origin.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Catalog", "Product"]

BUSY_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Product:
    id: int
    name: str
    price: float
    version: int


class Catalog:
    """Blocking SQLite calls run in a thread, one short-lived connection per call."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)

    def create(self, product_count: int) -> None:
        """Create and fill the table (the driver calls it once, before the workers start)."""
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " price REAL NOT NULL, version INTEGER NOT NULL)"
            )
            db.executemany(
                "INSERT INTO products VALUES (?, ?, ?, 1)",
                [(i, f"product {i}", float(i)) for i in range(1, product_count + 1)],
            )

    def _read(self, product_id: int) -> Product | None:
        db = self._connect()
        try:
            row = db.execute(
                "SELECT id, name, price, version FROM products WHERE id = ?", (product_id,)
            ).fetchone()
        finally:
            db.close()
        if row is None:
            return None
        return Product(id=row[0], name=row[1], price=row[2], version=row[3])

    def _update_price(self, product_id: int, price: float, expected_version: int) -> bool:
        db = self._connect()
        try:
            # The version check is in the write itself: If-Match alone is not atomic.
            cursor = db.execute(
                "UPDATE products SET price = ?, version = version + 1 WHERE id = ? AND version = ?",
                (price, product_id, expected_version),
            )
            return cursor.rowcount == 1
        finally:
            db.close()

    async def product(self, product_id: int) -> Product | None:
        return await asyncio.to_thread(self._read, product_id)

    async def update_price(self, product_id: int, price: float, *, expected_version: int) -> bool:
        return await asyncio.to_thread(self._update_price, product_id, price, expected_version)
