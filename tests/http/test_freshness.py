"""Storability (RFC 9111 §3), freshness (§4.2) and reuse of stored responses (§4.2.4, RFC 5861)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemw.http.cache_control import CacheControl, parse_cache_control
from cachemw.http.dates import format_http_date
from cachemw.http.freshness import (
    ServeAction,
    ServeDecision,
    ServeReason,
    StoreDecision,
    StoreReason,
    corrected_initial_age,
    current_age,
    freshness_lifetime,
    has_explicit_freshness,
    is_storable,
    retention_seconds,
    serve_decision,
)

T0 = 1_700_000_000.0


def cc(value: str) -> CacheControl:
    return parse_cache_control([value])


def store(response: str = "max-age=60", request: str = "", **overrides: Any) -> StoreDecision:
    arguments: dict[str, Any] = {
        "method": "GET",
        "status": 200,
        "request_cc": cc(request),
        "response_cc": cc(response),
        "has_authorization": False,
        "has_set_cookie": False,
        "vary": (),
        "has_explicit_freshness_or_default": True,
    }
    arguments.update(overrides)
    return is_storable(**arguments)


# --- storability (§3) ---------------------------------------------------------------------


def test_get_response_with_explicit_freshness_is_stored() -> None:
    decision = store()
    assert decision.storable
    assert decision.reason is StoreReason.STORABLE


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "DELETE", "get"])
def test_only_get_responses_are_stored(method: str) -> None:
    assert store(method=method).reason is StoreReason.METHOD


def test_get_with_a_request_body_is_not_stored() -> None:
    assert store(has_request_body=True).reason is StoreReason.REQUEST_BODY


@pytest.mark.parametrize("status", [100, 101, 103, 199, 304, 1000, 0])
def test_non_final_and_not_modified_statuses_are_not_stored(status: int) -> None:
    assert store(status=status).reason is StoreReason.STATUS


@pytest.mark.parametrize("status", [200, 203, 204, 301, 404, 410, 500, 503, 599, 999])
def test_final_status_with_explicit_freshness_is_stored(status: int) -> None:
    assert store(status=status).storable


def test_partial_content_is_not_stored_unless_supported() -> None:
    assert store(status=206).reason is StoreReason.PARTIAL
    assert store(status=206, store_partial=True).storable


def test_must_understand_with_unknown_status_is_not_stored() -> None:
    assert store("max-age=60, must-understand, no-store", status=299).reason is (
        StoreReason.MUST_UNDERSTAND
    )


def test_must_understand_with_understood_status_overrides_no_store() -> None:
    assert store("max-age=60, must-understand, no-store").storable


@pytest.mark.parametrize("response", ["no-store", "max-age=60, no-store", "NO-STORE, public"])
def test_no_store_response_is_not_stored(response: str) -> None:
    assert store(response).reason is StoreReason.NO_STORE


def test_request_no_store_prevents_storing() -> None:
    assert store(request="no-store").reason is StoreReason.REQUEST_NO_STORE


def test_private_response_is_not_stored_by_shared_cache() -> None:
    assert store("private, max-age=60").reason is StoreReason.PRIVATE


def test_private_response_may_be_stored_by_private_cache() -> None:
    assert store("private, max-age=60", shared=False).storable


@pytest.mark.parametrize(
    ("response", "storable"),
    [
        ("max-age=60", False),
        ("public, max-age=60", True),
        ("s-maxage=60", True),
        ("max-age=60, must-revalidate", True),
        ("max-age=60, proxy-revalidate", False),
    ],
)
def test_authorization_response_stored_only_with_public_or_s_maxage_or_must_revalidate(
    response: str, storable: bool
) -> None:
    decision = store(response, has_authorization=True)
    assert decision.storable is storable
    assert storable or decision.reason is StoreReason.AUTHORIZATION


def test_vary_star_response_is_not_stored() -> None:
    assert store(vary=None).reason is StoreReason.VARY_STAR


def test_set_cookie_response_is_not_stored_by_default() -> None:
    assert store(has_set_cookie=True).reason is StoreReason.SET_COOKIE


def test_set_cookie_response_is_stored_when_the_route_allows_it() -> None:
    assert store(has_set_cookie=True, allow_set_cookie=True).storable


@pytest.mark.parametrize(
    "response", ['max-age=60, private="Set-Cookie"', "max-age=60, no-cache=set-cookie"]
)
def test_set_cookie_named_by_qualified_directive_is_stripped_instead(response: str) -> None:
    decision = store(response, has_set_cookie=True)
    assert decision.storable
    assert decision.strip_fields == ("set-cookie",)


def test_response_without_explicit_freshness_is_not_stored() -> None:
    # §4.2.2 heuristic freshness is deliberately not used.
    assert store("public", has_explicit_freshness_or_default=False).reason is (
        StoreReason.NO_FRESHNESS
    )


@pytest.mark.parametrize(
    ("response", "has_expires", "shared", "expected"),
    [
        ("max-age=0", False, True, True),
        ("s-maxage=10", False, True, True),
        ("s-maxage=10", False, False, False),
        ("public", True, True, True),
        ("public, no-cache", False, True, False),
        ("", False, True, False),
    ],
)
def test_explicit_freshness_is_max_age_s_maxage_or_expires(
    response: str, has_expires: bool, shared: bool, expected: bool
) -> None:
    assert (
        has_explicit_freshness(response_cc=cc(response), has_expires=has_expires, shared=shared)
        is expected
    )


# --- freshness lifetime (§4.2.1) ------------------------------------------------------------

DATE = format_http_date(T0)


def test_s_maxage_overrides_max_age_for_shared_cache() -> None:
    assert freshness_lifetime(response_cc=cc("max-age=10, s-maxage=100")) == 100


def test_s_maxage_is_ignored_by_private_cache() -> None:
    assert freshness_lifetime(response_cc=cc("max-age=10, s-maxage=100"), shared=False) == 10


def test_max_age_overrides_expires() -> None:
    lifetime = freshness_lifetime(
        response_cc=cc("max-age=10"), expires=format_http_date(T0 + 500), date=DATE
    )
    assert lifetime == 10


def test_expires_minus_date_is_the_lifetime() -> None:
    expires = format_http_date(T0 + 500)
    assert freshness_lifetime(response_cc=cc(""), expires=expires, date=DATE) == 500


def test_expires_without_date_counts_from_receipt() -> None:
    expires = format_http_date(T0 + 500)
    assert freshness_lifetime(response_cc=cc(""), expires=expires, response_time=T0 + 100) == 400


@pytest.mark.parametrize("expires", [b"0", b"-1", b"never", b"", format_http_date(T0 - 5)])
def test_invalid_or_past_expires_means_stale(expires: bytes) -> None:
    lifetime = freshness_lifetime(response_cc=cc(""), expires=expires, date=DATE, default_ttl=300)
    assert lifetime == 0


def test_default_ttl_applies_only_without_explicit_freshness() -> None:
    assert freshness_lifetime(response_cc=cc(""), default_ttl=30) == 30
    assert freshness_lifetime(response_cc=cc("max-age=5"), default_ttl=30) == 5


def test_no_explicit_freshness_and_no_default_is_stale() -> None:
    assert freshness_lifetime(response_cc=cc("public")) == 0


# --- age (§4.2.3) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_header", "date_offset", "request_time", "response_time", "now", "expected"),
    [
        (None, 0, T0, T0, T0, 0),  # fresh off the origin
        (None, 0, T0, T0, T0 + 7, 7),  # resident time
        (b"30", 0, T0, T0, T0, 30),  # upstream Age counts
        (b"30", 0, T0 - 2, T0, T0 + 5, 37),  # Age + response delay + resident time
        (None, -40, T0, T0, T0, 40),  # apparent age from an old Date
        (b"10", -40, T0, T0, T0, 40),  # the larger of apparent and corrected age
        (b"junk", 0, T0, T0, T0 + 1, 1),  # invalid Age is ignored
        (None, +50, T0, T0, T0, 0),  # Date in the future never gives a negative age
        (None, 0, T0, T0, T0 - 30, 0),  # a clock stepping backwards never does either
    ],
)
def test_current_age_follows_rfc9111_4_2_3(
    age_header: bytes | None,
    date_offset: float,
    request_time: float,
    response_time: float,
    now: float,
    expected: float,
) -> None:
    age = current_age(
        age_header=age_header,
        date_header=format_http_date(T0 + date_offset),
        request_time=request_time,
        response_time=response_time,
        now=now,
    )
    assert age == expected


def test_missing_date_gives_no_apparent_age() -> None:
    assert (
        current_age(
            age_header=None, date_header=None, request_time=T0, response_time=T0, now=T0 + 3
        )
        == 3
    )


def test_corrected_initial_age_plus_resident_time_is_current_age() -> None:
    initial = corrected_initial_age(
        age_header=b"12", date_header=DATE, request_time=T0 - 1, response_time=T0
    )
    assert initial == 13


# --- reuse (§4.2.4, §5.2.1, RFC 5861) ---------------------------------------------------------


def serve(
    response: str = "max-age=100",
    request: str = "",
    *,
    age: float = 10,
    lifetime: float | None = None,
    **options: Any,
) -> ServeDecision:
    response_cc = cc(response)
    if lifetime is None:
        lifetime = freshness_lifetime(response_cc=response_cc)
    return serve_decision(
        response_cc=response_cc,
        request_cc=cc(request),
        freshness_lifetime=lifetime,
        current_age=age,
        **options,
    )


SERVE, REFRESH, REVALIDATE, TIMEOUT = (
    ServeAction.SERVE,
    ServeAction.SERVE_STALE_AND_REFRESH,
    ServeAction.REVALIDATE,
    ServeAction.GATEWAY_TIMEOUT,
)


@pytest.mark.parametrize(
    ("rule", "response", "request_", "age", "action", "reason"),
    [
        ("fresh response is served", "max-age=100", "", 10, SERVE, ServeReason.FRESH),
        ("stale response is revalidated", "max-age=100", "", 150, REVALIDATE, ServeReason.STALE),
        ("age equal to lifetime is stale", "max-age=100", "", 100, REVALIDATE, ServeReason.STALE),
        ("max-age=0 is stale on arrival", "max-age=0", "", 0, REVALIDATE, ServeReason.STALE),
        ("response no-cache always revalidates", "max-age=100, no-cache", "", 0, REVALIDATE,
         ServeReason.NO_CACHE),
        ("request no-cache revalidates", "max-age=100", "no-cache", 0, REVALIDATE,
         ServeReason.REQUEST_NO_CACHE),
        ("request max-age older than age is served", "max-age=100", "max-age=20", 10, SERVE,
         ServeReason.FRESH),
        ("request max-age exceeded revalidates", "max-age=100", "max-age=5", 10, REVALIDATE,
         ServeReason.REQUEST_MAX_AGE),
        ("request max-age=0 revalidates", "max-age=100", "max-age=0", 1, REVALIDATE,
         ServeReason.REQUEST_MAX_AGE),
        ("immutable ignores reload max-age=0", "max-age=100, immutable", "max-age=0", 1, SERVE,
         ServeReason.FRESH),
        ("immutable still honours no-cache", "max-age=100, immutable", "no-cache", 1, REVALIDATE,
         ServeReason.REQUEST_NO_CACHE),
        ("min-fresh satisfied is served", "max-age=100", "min-fresh=50", 10, SERVE,
         ServeReason.FRESH),
        ("min-fresh unsatisfied revalidates", "max-age=100", "min-fresh=95", 10, REVALIDATE,
         ServeReason.REQUEST_MIN_FRESH),
        ("max-stale within window is served", "max-age=100", "max-stale=60", 150, SERVE,
         ServeReason.MAX_STALE),
        ("max-stale beyond window revalidates", "max-age=100", "max-stale=40", 150, REVALIDATE,
         ServeReason.STALE),
        ("bare max-stale accepts any staleness", "max-age=100", "max-stale", 10**9, SERVE,
         ServeReason.MAX_STALE),
        ("max-stale cannot override must-revalidate", "max-age=100, must-revalidate",
         "max-stale", 150, REVALIDATE, ServeReason.STALE),
        ("max-stale cannot override proxy-revalidate", "max-age=100, proxy-revalidate",
         "max-stale", 150, REVALIDATE, ServeReason.STALE),
        ("max-stale cannot override s-maxage", "s-maxage=100", "max-stale", 150, REVALIDATE,
         ServeReason.STALE),
        ("stale-while-revalidate serves and refreshes", "max-age=100, stale-while-revalidate=60",
         "", 150, REFRESH, ServeReason.STALE_WHILE_REVALIDATE),
        ("stale-while-revalidate with s-maxage serves and refreshes",
         "s-maxage=100, stale-while-revalidate=60", "", 150, REFRESH,
         ServeReason.STALE_WHILE_REVALIDATE),
        ("stale-while-revalidate window elapsed revalidates",
         "max-age=100, stale-while-revalidate=60", "", 161, REVALIDATE, ServeReason.STALE),
        ("must-revalidate forbids stale-while-revalidate",
         "max-age=100, stale-while-revalidate=60, must-revalidate", "", 150, REVALIDATE,
         ServeReason.STALE),
        ("request max-age refuses stale-while-revalidate",
         "max-age=100, stale-while-revalidate=60", "max-age=120", 150, REVALIDATE,
         ServeReason.REQUEST_MAX_AGE),
        ("only-if-cached fresh is served", "max-age=100", "only-if-cached", 10, SERVE,
         ServeReason.FRESH),
        ("only-if-cached stale is a gateway timeout", "max-age=100", "only-if-cached", 150,
         TIMEOUT, ServeReason.STALE),
        ("only-if-cached with max-stale is served", "max-age=100", "only-if-cached, max-stale",
         150, SERVE, ServeReason.MAX_STALE),
    ],
)  # fmt: skip
def test_request_and_response_directives_decide_reuse(
    rule: str, response: str, request_: str, age: float, action: ServeAction, reason: ServeReason
) -> None:
    decision = serve(response, request_, age=age)
    assert (decision.action, decision.reason) == (action, reason), rule


def test_pragma_no_cache_revalidates_without_cache_control() -> None:
    assert serve(pragma_no_cache=True).reason is ServeReason.REQUEST_NO_CACHE


def test_pragma_is_ignored_when_request_has_cache_control() -> None:
    assert serve(request="max-age=100", pragma_no_cache=True).action is SERVE


def test_pragma_counts_when_request_cache_control_is_only_unknown_extensions() -> None:
    assert serve(request="foo", pragma_no_cache=True).reason is ServeReason.REQUEST_NO_CACHE


@pytest.mark.parametrize("request_", ["no-cache", "max-age=0", "min-fresh=1000"])
def test_client_cannot_force_revalidation_of_fresh_response_when_disabled(request_: str) -> None:
    decision = serve(request=request_, client_can_force_revalidation=False)
    assert decision.action is SERVE


def test_stale_response_is_revalidated_even_when_client_revalidation_is_disabled() -> None:
    decision = serve(request="no-cache", age=150, client_can_force_revalidation=False)
    assert decision.action is REVALIDATE


def test_ttl_is_lifetime_minus_age() -> None:
    assert serve(age=30).ttl == 70
    assert serve(age=130).ttl == -30


@pytest.mark.parametrize(
    ("response", "request_", "age", "usable"),
    [
        ("max-age=100, stale-if-error=60", "", 150, True),
        ("max-age=100, stale-if-error=60", "", 161, False),
        ("max-age=100", "stale-if-error=60", 150, True),
        ("max-age=100", "", 150, False),
        ("max-age=100, stale-if-error=60, must-revalidate", "", 150, False),
        ("max-age=100, stale-if-error=60, no-cache", "", 50, False),
        ("s-maxage=100, stale-if-error=60", "", 150, True),
        ("max-age=100, stale-if-error=60", "no-cache", 50, True),
    ],
)
def test_stale_if_error_allows_serving_stored_response_when_origin_fails(
    response: str, request_: str, age: float, usable: bool
) -> None:
    decision = serve(response, request_, age=age)
    assert decision.action is not SERVE
    assert decision.serve_stale_on_error is usable


directives = st.lists(
    st.sampled_from(
        [
            "no-cache",
            "max-stale",
            "max-stale=30",
            "max-age=0",
            "max-age=50",
            "min-fresh=20",
            "only-if-cached",
            "stale-while-revalidate=60",
            "stale-if-error=60",
            "s-maxage=100",
            "immutable",
            "proxy-revalidate",
            "public",
        ]
    ),
    max_size=5,
).map(", ".join)


@given(directives, directives, st.floats(0, 500), st.floats(0, 500), st.booleans())
def test_must_revalidate_response_is_never_used_stale(
    response: str, request_: str, lifetime: float, age: float, pragma: bool
) -> None:
    decision = serve(
        response + ", must-revalidate", request_, age=age, lifetime=lifetime, pragma_no_cache=pragma
    )
    if age >= lifetime:
        assert decision.action in (REVALIDATE, TIMEOUT)
        assert not decision.serve_stale_on_error


@given(directives, directives, st.floats(0, 500), st.floats(0, 500))
def test_served_response_is_fresh_or_explicitly_allowed_stale(
    response: str, request_: str, lifetime: float, age: float
) -> None:
    decision = serve(response, request_, age=age, lifetime=lifetime)
    if decision.action is SERVE and decision.reason is ServeReason.FRESH:
        assert age < lifetime
    if age >= lifetime and decision.action in (SERVE, REFRESH):
        assert "max-stale" in request_ or "stale-while-revalidate" in response


# --- retention ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "has_validator", "expected"),
    [
        ("max-age=100", False, 90),
        ("max-age=100, stale-while-revalidate=30, stale-if-error=300", False, 390),
        ("max-age=100, stale-if-error=300, must-revalidate", False, 90),
        ("max-age=100", True, 90 + 600),
        ("max-age=0", False, 0),
        ("max-age=0, stale-if-error=25", False, 15),  # stored 10 s stale: 15 s of SIE left
        ("max-age=0, stale-if-error=5", False, 0),
    ],
)
def test_retention_covers_freshness_stale_windows_and_revalidation(
    response: str, has_validator: bool, expected: float
) -> None:
    retention = retention_seconds(
        freshness_lifetime=freshness_lifetime(response_cc=cc(response)),
        current_age=10,
        response_cc=cc(response),
        has_validator=has_validator,
        revalidation_grace=600,
    )
    assert retention == expected
