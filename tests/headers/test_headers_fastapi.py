"""FastAPI: cache_policy as dependency and decorator, condition before the handler runs."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, HTTPException

from cachemw.headers import HeadersMiddleware
from cachemw.headers.fastapi import cache_policy, condition
from tests.headers.apps import client

UPDATED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
UPDATED_AT_HTTP = "Fri, 02 Jan 2026 03:04:05 GMT"


class Store:
    """A tiny versioned resource store; `handler_calls` proves what ran."""

    def __init__(self) -> None:
        self.items: dict[int, dict[str, int]] = {1: {"id": 1, "version": 3}}
        self.handler_calls = 0


def make_app(store: Store, *, middleware: bool = True) -> FastAPI:
    app = FastAPI()
    if middleware:
        app.add_middleware(HeadersMiddleware)

    async def item_etag(item_id: int) -> str | None:
        item = store.items.get(item_id)
        return None if item is None else f"v{item['version']}"

    async def item_updated_at(item_id: int) -> datetime | None:
        return UPDATED_AT if item_id in store.items else None

    def item_updated_at_epoch(report_id: int) -> float:
        return UPDATED_AT.timestamp()

    read_conditions = condition(etag=item_etag, last_modified=item_updated_at)

    @app.api_route(
        "/items/{item_id}",
        methods=["GET", "HEAD"],
        dependencies=[cache_policy(public=True, max_age=60, vary=("Accept",)), read_conditions],
    )
    async def read_item(item_id: int) -> dict[str, int]:
        store.handler_calls += 1
        if item_id not in store.items:
            raise HTTPException(404)
        return store.items[item_id]

    @app.put("/items/{item_id}", dependencies=[condition(etag=item_etag)])
    async def replace_item(item_id: int) -> dict[str, int]:
        store.handler_calls += 1
        old = store.items.get(item_id, {"version": 0})
        store.items[item_id] = {"id": item_id, "version": old["version"] + 1}
        return store.items[item_id]

    @app.get("/reports/{report_id}", dependencies=[condition(last_modified=item_updated_at_epoch)])
    async def read_report(report_id: int) -> dict[str, int]:
        store.handler_calls += 1
        return {"id": report_id}

    @cache_policy(private=True, max_age=5)
    @app.get("/decorated-above")
    async def decorated_above() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/decorated-below")
    @cache_policy(no_store=True)
    async def decorated_below() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/parameter-style")
    async def parameter_style(
        _: Annotated[None, cache_policy(public=True, max_age=1)],
    ) -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture
def store() -> Store:
    return Store()


async def test_cache_policy_dependency_sets_cache_control_and_vary(store: Store) -> None:
    async with client(make_app(store)) as http:
        response = await http.get("/items/1")
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["vary"] == "Accept"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/decorated-above", "private, max-age=5"),
        ("/decorated-below", "no-store"),
        ("/parameter-style", "public, max-age=1"),
    ],
)
async def test_cache_policy_works_as_decorator_either_side_and_as_parameter(
    store: Store, path: str, expected: str
) -> None:
    async with client(make_app(store)) as http:
        assert (await http.get(path)).headers["cache-control"] == expected


async def test_cache_policy_dependency_without_middleware_fails_loudly(store: Store) -> None:
    async with client(make_app(store, middleware=False)) as http:
        with pytest.raises(RuntimeError, match="needs HeadersMiddleware"):
            await http.get("/items/1")


async def test_condition_etag_and_last_modified_are_sent_without_body_digest(
    store: Store,
) -> None:
    async with client(make_app(store)) as http:
        response = await http.get("/items/1")
    assert response.headers["etag"] == '"v3"'
    assert response.headers["last-modified"] == UPDATED_AT_HTTP


async def test_condition_not_modified_is_answered_before_the_handler_runs(store: Store) -> None:
    async with client(make_app(store)) as http:
        response = await http.get("/items/1", headers={"If-None-Match": '"v3"'})
    assert response.status_code == 304
    assert store.handler_calls == 0
    assert response.headers["etag"] == '"v3"'
    assert response.headers["cache-control"] == "public, max-age=60"
    assert "content-type" not in response.headers


async def test_condition_head_not_modified_runs_no_handler(store: Store) -> None:
    async with client(make_app(store)) as http:
        response = await http.head("/items/1", headers={"If-None-Match": 'W/"v3"'})
    assert (response.status_code, store.handler_calls) == (304, 0)


async def test_condition_if_modified_since_returns_304(store: Store) -> None:
    async with client(make_app(store)) as http:
        response = await http.get("/items/1", headers={"If-Modified-Since": UPDATED_AT_HTTP})
    assert (response.status_code, store.handler_calls) == (304, 0)


async def test_condition_with_only_last_modified_sends_it_and_answers_304(
    store: Store,
) -> None:
    async with client(make_app(store)) as http:
        full = await http.get("/reports/1")
        conditional = await http.get("/reports/1", headers={"If-Modified-Since": UPDATED_AT_HTTP})
    assert full.headers["last-modified"] == UPDATED_AT_HTTP
    assert (conditional.status_code, store.handler_calls) == (304, 1)


async def test_condition_stale_client_copy_gets_full_response(store: Store) -> None:
    async with client(make_app(store)) as http:
        response = await http.get("/items/1", headers={"If-None-Match": '"v2"'})
    assert (response.status_code, store.handler_calls) == (200, 1)


async def test_condition_leaves_missing_resource_to_the_handler(store: Store) -> None:
    async with client(make_app(store)) as http:
        response = await http.get("/items/9", headers={"If-None-Match": "*"})
    assert response.status_code == 404


async def test_if_match_failure_on_put_returns_412_and_runs_no_handler(store: Store) -> None:
    async with client(make_app(store)) as http:
        response = await http.put("/items/1", headers={"If-Match": '"v2"'})
    assert response.status_code == 412
    assert store.handler_calls == 0
    assert store.items[1]["version"] == 3


async def test_if_match_success_on_put_runs_the_handler(store: Store) -> None:
    async with client(make_app(store)) as http:
        response = await http.put("/items/1", headers={"If-Match": '"v3"'})
    assert response.status_code == 200
    assert store.items[1]["version"] == 4


async def test_second_writer_with_the_same_if_match_loses(store: Store) -> None:
    async with client(make_app(store)) as http:
        first = await http.put("/items/1", headers={"If-Match": '"v3"'})
        second = await http.put("/items/1", headers={"If-Match": '"v3"'})
    assert (first.status_code, second.status_code) == (200, 412)
    assert store.items[1]["version"] == 4


async def test_if_none_match_star_on_put_only_creates(store: Store) -> None:
    async with client(make_app(store)) as http:
        create = await http.put("/items/2", headers={"If-None-Match": "*"})
        overwrite = await http.put("/items/1", headers={"If-None-Match": "*"})
    assert (create.status_code, overwrite.status_code) == (200, 412)
    assert store.handler_calls == 1


def test_cache_policy_wrapped_in_depends_fails_at_route_definition() -> None:
    app = FastAPI()
    with pytest.raises(TypeError, match=r"write dependencies=\[cache_policy"):

        @app.get("/x", dependencies=[Depends(cache_policy(max_age=1))])
        async def endpoint() -> None: ...


def test_condition_needs_a_validator() -> None:
    with pytest.raises(ValueError, match="condition needs etag="):
        condition()


def test_cache_policy_rejects_invalid_options() -> None:
    with pytest.raises(ValueError, match="max_age must be between"):
        cache_policy(max_age=-5)


def test_fastapi_is_not_imported_by_the_headers_package() -> None:
    script = (
        "import sys; sys.modules['fastapi'] = None; "
        "import cachemw.headers, cachemw.headers.routes, cachemw.http.policy; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr
