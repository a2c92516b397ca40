"""Plain Starlette: cache_policy as endpoint data, condition as an endpoint decorator."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from cachemw.headers import CachePolicy, HeadersMiddleware, cache_policy, condition
from cachemw.headers.routes import to_entity_tag
from cachemw.http.validators import EntityTag
from tests.headers.apps import client


class Document:
    def __init__(self) -> None:
        self.version = 7
        self.writes = 0
        self.reads = 0


def make_app(document: Document) -> Starlette:
    async def current_etag(request: Request) -> EntityTag:
        return EntityTag(str(document.version).encode())

    def current_version_sync(request: Request) -> str:
        return f'W/"{document.version}"'

    @cache_policy(public=True, max_age=30)
    @condition(etag=current_etag)
    async def read(request: Request) -> Response:
        document.reads += 1
        return JSONResponse({"version": document.version})

    @condition(etag=current_etag)
    async def write(request: Request) -> Response:
        document.writes += 1
        document.version += 1
        return JSONResponse({"version": document.version})

    @condition(etag=current_version_sync)
    def read_sync(request: Request) -> Response:
        document.reads += 1
        return PlainTextResponse(str(document.version))

    @cache_policy(CachePolicy(private=True, max_age=10))
    class Profile(HTTPEndpoint):
        async def get(self, request: Request) -> Response:
            return JSONResponse({"me": True})

    routes = [
        Route("/doc", read, methods=["GET", "HEAD"]),
        Route("/doc", write, methods=["PUT"]),
        Route("/doc-sync", read_sync),
        Route("/profile", Profile),
    ]
    return Starlette(routes=routes, middleware=[Middleware(HeadersMiddleware)])


@pytest.fixture
def document() -> Document:
    return Document()


async def test_cache_policy_decorator_on_starlette_function_endpoint(document: Document) -> None:
    async with client(make_app(document)) as http:
        response = await http.get("/doc")
    assert response.headers["cache-control"] == "public, max-age=30"
    assert response.headers["etag"] == '"7"'


async def test_cache_policy_decorator_on_http_endpoint_class(document: Document) -> None:
    async with client(make_app(document)) as http:
        response = await http.get("/profile")
    assert response.headers["cache-control"] == "private, max-age=10"


async def test_condition_answers_304_before_the_endpoint_runs(document: Document) -> None:
    async with client(make_app(document)) as http:
        response = await http.get("/doc", headers={"If-None-Match": '"7"'})
    assert response.status_code == 304
    assert document.reads == 0
    assert response.headers["etag"] == '"7"'
    assert response.headers["cache-control"] == "public, max-age=30"


async def test_condition_with_sync_validator_and_sync_endpoint(document: Document) -> None:
    async with client(make_app(document)) as http:
        fresh = await http.get("/doc-sync", headers={"If-None-Match": 'W/"7"'})
        stale = await http.get("/doc-sync", headers={"If-None-Match": 'W/"6"'})
    assert (fresh.status_code, stale.status_code, stale.text) == (304, 200, "7")


async def test_if_match_failure_on_put_returns_412_and_writes_nothing(document: Document) -> None:
    async with client(make_app(document)) as http:
        response = await http.put("/doc", headers={"If-Match": '"6"'})
    assert response.status_code == 412
    assert (document.writes, document.version) == (0, 7)


async def test_if_match_success_on_put_writes(document: Document) -> None:
    async with client(make_app(document)) as http:
        response = await http.put("/doc", headers={"If-Match": '"7"'})
    assert response.json() == {"version": 8}


def test_cache_policy_rejects_policy_and_options_together() -> None:
    with pytest.raises(ValueError, match="either a CachePolicy or keyword options"):
        cache_policy(CachePolicy(max_age=1), max_age=2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("v3", EntityTag(b"v3")),
        (b"17", EntityTag(b"17")),
        ('"v3"', EntityTag(b"v3")),
        ('W/"v3"', EntityTag(b"v3", weak=True)),
        (EntityTag(b"x"), EntityTag(b"x")),
        (None, None),
    ],
)
def test_route_etag_values_become_entity_tags(
    value: str | bytes | EntityTag | None, expected: EntityTag | None
) -> None:
    assert to_entity_tag(value) == expected


@pytest.mark.parametrize("value", ['has "quote"', "sp ace", 'W/"unterminated'])
def test_route_etag_that_is_not_an_entity_tag_is_a_route_bug(value: str) -> None:
    with pytest.raises(ValueError, match=r"opaque|not a valid entity-tag"):
        to_entity_tag(value)
