"""The demo's own small parts: configuration, the cache-outcome reading, the database."""

from __future__ import annotations

import gc
import time
from dataclasses import replace

import pytest

from demo_app.config import DEMO_SESSIONS, DemoConfig
from demo_app.db import ProductChanges, ShopDatabase
from demo_app.observability import cache_outcome
from tests.demo.server import in_process, patient_config


@pytest.mark.parametrize(
    ("cache_status", "outcome"),
    [
        (b"cachemw; hit; ttl=59", "hit"),
        (b"cachemw; fwd=uri-miss; fwd-status=200; stored", "miss"),
        (b"cachemw; fwd=vary-miss; stored", "miss"),
        (b"cachemw; fwd=stale; fwd-status=200", "stale"),
        (b"cachemw; fwd=uri-miss; ttl=59; collapsed", "collapsed"),
        (b"cachemw; fwd=bypass; detail=route", "bypass"),
        (b"cachemw", "none"),
        (None, "none"),
    ],
)
def test_cache_outcome_reads_cache_status(cache_status: bytes | None, outcome: str) -> None:
    assert cache_outcome(cache_status) == outcome


def test_config_reads_the_read_delay_in_milliseconds() -> None:
    config = DemoConfig.from_env({"DEMO_READ_DELAY_MS": "45"})
    assert config.read_delay == 0.045


def test_config_defaults_to_one_valkey_and_an_in_memory_database() -> None:
    config = DemoConfig.from_env({"VALKEY_URL": "redis://127.0.0.1:7000/0"})
    assert config.valkey.url == "redis://127.0.0.1:7000/0"
    assert config.state_valkey is None
    assert config.database == ":memory:"
    assert config.sessions == DEMO_SESSIONS


def test_config_reads_the_session_store_budget_in_milliseconds() -> None:
    config = DemoConfig.from_env({"DEMO_SESSION_STORE_TIMEOUT_MS": "800"})
    assert config.sessions.store_timeout == 0.8
    assert config.sessions.cookie == DEMO_SESSIONS.cookie


def test_demo_session_cookie_works_over_plain_http_without_losing_httponly_and_lax() -> None:
    cookie = DEMO_SESSIONS.cookie
    assert (cookie.secure, cookie.http_only, cookie.same_site) == (False, True, "lax")


@pytest.mark.parametrize(
    ("environ", "setting"),
    [
        ({"DEMO_READ_DELAY_MS": "slow"}, "DEMO_READ_DELAY_MS"),
        ({"DEMO_READ_DELAY_MS": "9000"}, "read_delay"),
        ({"VALKEY_URL": "http://nope"}, "url"),
    ],
)
def test_bad_configuration_names_the_setting(environ: dict[str, str], setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        DemoConfig.from_env(environ)


async def test_update_with_an_old_version_changes_nothing() -> None:
    db = ShopDatabase(read_delay=0)
    try:
        changes = ProductChanges(price=1.0)
        assert await db.update_product(1, changes, expected_version=1)
        assert not await db.update_product(1, ProductChanges(price=2.0), expected_version=1)
        product = await db.product(1)
        assert product is not None
        assert (product.price, product.version) == (1.0, 2)
    finally:
        db.close()


async def test_reads_take_the_documented_artificial_delay() -> None:
    db = ShopDatabase(read_delay=0.03)
    try:
        started = time.perf_counter()
        await db.product(1)
        assert time.perf_counter() - started >= 0.03
    finally:
        db.close()


async def test_started_demo_freezes_what_start_up_built(standalone_url: str) -> None:
    gc.unfreeze()
    config = replace(patient_config(standalone_url), freeze_after_startup=True)
    try:
        async with in_process(config) as (_, client):
            assert gc.get_freeze_count() > 0  # start-up objects no full collection walks
            assert (await client.get("/")).status_code == 200
    finally:
        gc.unfreeze()
        gc.freeze()  # as the suite left it (tests/conftest.py freezes after collection)
