"""Serving stored responses: Age, Date, Cache-Status, client conditionals, request directives."""

from __future__ import annotations

import pytest

from cachemw.cache import CacheSettings
from cachemw.valkey import Valkey
from tests.cache.conftest import CacheHarness, build_harness

ETAG = '"v1"'
LAST_MODIFIED = "Fri, 15 Jan 2027 07:00:00 GMT"


def validated(max_age: int = 60) -> list[tuple[str, str]]:
    return [
        ("cache-control", f"max-age={max_age}"),
        ("etag", ETAG),
        ("last-modified", LAST_MODIFIED),
    ]


async def test_age_header_counts_resident_time(h: CacheHarness) -> None:
    await h.client.get("/a")
    h.clock.advance(7)
    hit = await h.client.get("/a")
    assert hit.headers["age"] == "7"


async def test_age_includes_upstream_age(h: CacheHarness) -> None:
    h.origin.reply("/a", headers=[("cache-control", "max-age=60"), ("age", "10")])
    await h.client.get("/a")
    h.clock.advance(5)
    hit = await h.client.get("/a")
    assert hit.headers["age"] == "15"
    assert hit.headers.get_list("age") == ["15"]


async def test_upstream_age_reduces_freshness(h: CacheHarness) -> None:
    h.origin.reply("/a", headers=[("cache-control", "max-age=60"), ("age", "50")])
    await h.client.get("/a")
    h.clock.advance(11)
    await h.client.get("/a")
    assert h.origin.count("/a") == 2


async def test_stored_date_is_kept_and_added_when_missing(h: CacheHarness) -> None:
    h.origin.reply(
        "/dated",
        headers=[("cache-control", "max-age=60"), ("date", "Fri, 15 Jan 2027 08:00:00 GMT")],
    )
    await h.client.get("/dated")
    await h.client.get("/undated")
    h.clock.advance(3)
    assert (await h.client.get("/dated")).headers["date"] == "Fri, 15 Jan 2027 08:00:00 GMT"
    assert (await h.client.get("/undated")).headers["date"] == "Fri, 15 Jan 2027 08:00:00 GMT"


async def test_duplicate_date_keeps_the_first(h: CacheHarness) -> None:
    h.origin.reply(
        "/d",
        headers=[
            ("cache-control", "max-age=60"),
            ("date", "Fri, 15 Jan 2027 08:00:00 GMT"),
            ("date", "Fri, 15 Jan 2027 08:00:09 GMT"),
        ],
    )
    await h.client.get("/d")
    hit = await h.client.get("/d")
    assert hit.headers.get_list("date") == ["Fri, 15 Jan 2027 08:00:00 GMT"]


@pytest.mark.parametrize(
    ("path", "request_headers", "expected"),
    [
        ("/fresh", {}, "cachemw; hit; ttl=60"),
        ("/bypass", {"cookie": "sid=1"}, "cachemw; fwd=bypass; detail=cookie"),
    ],
)
async def test_cache_status_describes_the_hit_or_bypass(
    h: CacheHarness, path: str, request_headers: dict[str, str], expected: str
) -> None:
    await h.client.get(path, headers=request_headers)
    second = await h.client.get(path, headers=request_headers)
    assert second.headers["cache-status"] == expected


async def test_cache_status_on_a_miss_says_stored(h: CacheHarness) -> None:
    miss = await h.client.get("/m")
    assert miss.headers["cache-status"] == "cachemw; fwd=uri-miss; fwd-status=200; stored"


@pytest.mark.parametrize(
    ("conditional", "status"),
    [
        ({"if-none-match": ETAG}, 304),
        ({"if-none-match": 'W/"v1"'}, 304),
        ({"if-none-match": '"other"'}, 200),
        ({"if-none-match": "*"}, 304),
        ({"if-modified-since": LAST_MODIFIED}, 304),
        ({"if-modified-since": "Fri, 15 Jan 2027 06:00:00 GMT"}, 200),
        ({"if-match": '"other"'}, 412),
        ({"if-match": ETAG}, 200),
        ({"if-unmodified-since": "Fri, 15 Jan 2027 06:00:00 GMT"}, 412),
    ],
)
async def test_client_conditionals_are_answered_from_the_entry(
    h: CacheHarness, conditional: dict[str, str], status: int
) -> None:
    h.origin.reply("/c", headers=validated())
    await h.client.get("/c")
    response = await h.client.get("/c", headers=conditional)
    assert response.status_code == status
    assert h.origin.count("/c") == 1


async def test_not_modified_from_entry_carries_the_304_field_set(h: CacheHarness) -> None:
    h.origin.reply("/c", headers=[*validated(), ("x-extra", "1"), ("vary", "accept")])
    await h.client.get("/c")
    response = await h.client.get("/c", headers={"if-none-match": ETAG})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == ETAG
    assert response.headers["cache-control"] == "max-age=60"
    assert response.headers["vary"] == "accept"
    assert "age" in response.headers
    assert "x-extra" not in response.headers
    assert "content-length" not in response.headers


async def test_conditional_miss_is_stored_and_answered_with_304(h: CacheHarness) -> None:
    h.origin.reply("/c", headers=validated())
    response = await h.client.get("/c", headers={"if-none-match": ETAG})
    assert response.status_code == 304
    full = await h.client.get("/c")
    assert full.status_code == 200
    assert full.content == b"hello"
    assert h.origin.count("/c") == 1
    # The app saw no client conditional: the fill needs a full response to store.
    assert not any(name.startswith(b"if-") for name, _ in h.origin.requests[0]["headers"])


@pytest.mark.parametrize(
    ("request_cc", "advance", "origin_calls"),
    [
        ("no-cache", 0, 2),
        ("max-age=5", 10, 2),
        ("max-age=50", 10, 1),
        ("min-fresh=55", 10, 2),
        ("min-fresh=5", 10, 1),
        ("max-stale=30", 70, 1),
        ("max-stale=5", 70, 2),
        ("max-stale", 1000, 1),
    ],
)
async def test_request_directives_are_honoured(
    h: CacheHarness, request_cc: str, advance: float, origin_calls: int
) -> None:
    await h.client.get("/r")
    h.clock.advance(advance)
    response = await h.client.get("/r", headers={"cache-control": request_cc})
    assert response.status_code == 200
    assert h.origin.count("/r") == origin_calls


async def test_pragma_no_cache_without_cache_control_revalidates(h: CacheHarness) -> None:
    await h.client.get("/r")
    await h.client.get("/r", headers={"pragma": "no-cache"})
    assert h.origin.count("/r") == 2


async def test_only_if_cached_without_entry_is_504(h: CacheHarness) -> None:
    response = await h.client.get("/none", headers={"cache-control": "only-if-cached"})
    assert response.status_code == 504
    assert h.origin.count("/none") == 0


async def test_only_if_cached_with_fresh_entry_is_served(h: CacheHarness) -> None:
    await h.client.get("/oic")
    response = await h.client.get("/oic", headers={"cache-control": "only-if-cached"})
    assert response.status_code == 200
    assert h.origin.count("/oic") == 1


async def test_client_no_cache_cannot_force_refetch_when_disabled(valkey: Valkey) -> None:
    async with build_harness(valkey, CacheSettings(honor_client_no_cache=False)) as h:
        await h.client.get("/r")
        response = await h.client.get("/r", headers={"cache-control": "no-cache"})
        assert "hit" in response.headers["cache-status"]
        assert h.origin.count("/r") == 1


async def test_response_no_cache_is_always_revalidated(h: CacheHarness) -> None:
    h.origin.reply(
        "/nc", headers=[("cache-control", "no-cache, max-age=60"), ("etag", ETAG)], conditional=True
    )
    await h.client.get("/nc")
    second = await h.client.get("/nc")
    assert second.status_code == 200
    assert second.content == b"hello"
    assert h.origin.count("/nc") == 2
    assert "fwd-status=304" in second.headers["cache-status"]


async def test_cache_tag_header_never_reaches_the_client(h: CacheHarness) -> None:
    h.origin.reply("/t", headers=[("cache-control", "max-age=60"), ("cache-tag", "a b")])
    miss = await h.client.get("/t")
    hit = await h.client.get("/t")
    assert "cache-tag" not in miss.headers
    assert "cache-tag" not in hit.headers
