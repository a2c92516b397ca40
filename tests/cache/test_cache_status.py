"""Cache-Status formatting (RFC 9211)."""

from __future__ import annotations

import pytest

from cachemw.http.cache_status import ForwardReason, format_cache_status, format_hit_status


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"hit": True, "ttl": 376.9}, b"cachemw; hit; ttl=376"),
        ({"hit": True, "ttl": -12.5}, b"cachemw; hit; ttl=-12"),
        ({"fwd": ForwardReason.URI_MISS, "stored": True}, b"cachemw; fwd=uri-miss; stored"),
        (
            {"fwd": ForwardReason.STALE, "fwd_status": 304, "ttl": 60},
            b"cachemw; fwd=stale; fwd-status=304; ttl=60",
        ),
        ({"fwd": ForwardReason.URI_MISS, "collapsed": True}, b"cachemw; fwd=uri-miss; collapsed"),
        ({"fwd": ForwardReason.BYPASS, "detail": "cookie"}, b"cachemw; fwd=bypass; detail=cookie"),
        ({"detail": "has space"}, b'cachemw; detail="has space"'),
        ({"detail": "1abc"}, b'cachemw; detail="1abc"'),
        ({"cache_name": "edge", "hit": True}, b"edge; hit"),
    ],
)
def test_cache_status_member_is_formatted_per_rfc_9211(
    kwargs: dict[str, object], expected: bytes
) -> None:
    assert format_cache_status(**kwargs) == expected  # type: ignore[arg-type]


def test_cache_status_ttl_is_bounded_to_an_sf_integer() -> None:
    assert format_cache_status(hit=True, ttl=1e30) == b"cachemw; hit; ttl=999999999999999"
    assert format_cache_status(hit=True, ttl=float("nan")) == b"cachemw; hit; ttl=0"


@pytest.mark.parametrize("ttl", [0, 0.9, 59.99, -3.5, 1e20, float("nan"), float("-inf")])
@pytest.mark.parametrize("name", ["cachemw", "edge-1"])
def test_hit_status_fast_path_equals_the_full_formatter(name: str, ttl: float) -> None:
    prefix = format_cache_status(cache_name=name, hit=True)
    assert format_hit_status(prefix, ttl) == format_cache_status(cache_name=name, hit=True, ttl=ttl)
