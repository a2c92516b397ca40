"""Fixtures for the demo app: in-process (httpx ASGITransport on real Valkey) and as a
server process started like ``make demo`` does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from demo_app.app import DemoApp
from tests.demo.server import DemoServer, in_process, patient_config


@pytest.fixture
async def demo_and_client(valkey_url: str) -> AsyncIterator[tuple[DemoApp, httpx.AsyncClient]]:
    """The demo on a real, empty Valkey (standalone and cluster), without the read delay,
    started and stopped through its lifespan, and a client from 203.0.113.7."""
    async with in_process(patient_config(valkey_url)) as both:
        yield both


@pytest.fixture
def demo(demo_and_client: tuple[DemoApp, httpx.AsyncClient]) -> DemoApp:
    return demo_and_client[0]


@pytest.fixture
def client(demo_and_client: tuple[DemoApp, httpx.AsyncClient]) -> httpx.AsyncClient:
    return demo_and_client[1]


@pytest.fixture
def demo_server() -> Iterator[DemoServer]:
    """``python -m demo_app`` on a free port with its own embedded Valkey, stopped by PID."""
    server = DemoServer().start()
    try:
        yield server
    finally:
        server.stop()
