"""Rate-limit rule syntax, window arithmetic and the IETF RateLimit fields (sans-I/O)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemw.http.ratelimit import (
    QUOTA_EXCEEDED_TYPE,
    REDUCED_CAPACITY_TYPE,
    Decision,
    Rule,
    Window,
    WindowStatus,
    decision_from_reply,
    format_legacy_headers,
    format_ratelimit,
    format_rule_ratelimit,
    parse_windows,
    quota_exceeded_body,
    reduced_capacity_body,
    retry_after_seconds,
    seconds_until,
)
from tests.ratelimit.sf_parser import (
    StructuredFieldError,
    check_ratelimit,
    check_ratelimit_policy,
    parse_list,
)


@pytest.mark.parametrize(
    ("text", "windows"),
    [
        ("100/minute", [(100, 60)]),
        ("10/10s", [(10, 10)]),
        ("5/second", [(5, 1)]),
        ("5 per second", [(5, 1)]),
        ("1000/day", [(1000, 86400)]),
        ("3/2h", [(3, 7200)]),
        (" 7 / 1 Minute ", [(7, 60)]),
        ("10/10s;1000/day", [(10, 10), (1000, 86400)]),
        ("1000/day; 10/10s", [(10, 10), (1000, 86400)]),
        ("1/s,2/m", [(1, 1), (2, 60)]),
    ],
)
def test_rule_syntax_parses_into_windows_shortest_first(
    text: str, windows: list[tuple[int, int]]
) -> None:
    assert [(w.limit, w.seconds) for w in parse_windows(text)] == windows


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("", "''"),
        ("abc", "'abc'"),
        ("10", "'10'"),
        ("10/fortnight", "'10/fortnight'"),
        ("0/minute", "'0/minute'"),
        ("10/0s", "'10/0s'"),
        ("-1/minute", "'-1/minute'"),
        ("10/400d", "'10/400d'"),
        ("10/minute;;5/s", "''"),
        ("10/minute;20/60s", "60 s window"),
    ],
)
def test_invalid_rule_syntax_error_names_the_bad_text(text: str, named: str) -> None:
    with pytest.raises(ValueError, match="rate limit") as caught:
        parse_windows(text)
    assert named in str(caught.value)


_UNITS = {"s": 1, "second": 1, "m": 60, "minutes": 60, "h": 3600, "day": 86400}


@given(
    limit=st.integers(1, 10**9),
    count=st.integers(1, 300),
    unit=st.sampled_from(sorted(_UNITS)),
)
def test_rule_syntax_round_trips_any_valid_window(limit: int, count: int, unit: str) -> None:
    (window,) = parse_windows(f"{limit}/{count}{unit}")
    assert window == Window(limit, count * _UNITS[unit])


@given(st.text(max_size=40))
def test_rule_parser_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_windows(text)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "bad name"}, "rule name"),
        ({"name": ""}, "rule name"),
        ({"limit": "ten/minute"}, "rate limit"),
        ({"routes": ("users/{id}",)}, "routes"),
        ({"routes": "/login"}, "routes"),
        ({"path_prefixes": ("api",)}, "path_prefixes"),
        ({"methods": ("get",)}, "methods"),
        ({"methods": "GET"}, "methods"),
        ({"per_params": ("a b",)}, "per_params"),
        ({"bucket": "a/b"}, "bucket"),
        ({"algorithm": "leaky"}, "algorithm"),
        ({"cost": 0}, "cost"),
        ({"cost": 11}, "cost"),
        ({"cost": True}, "cost"),
        ({"on_error": "maybe"}, "on_error"),
        ({"identity": "ip"}, "identity"),
    ],
)
def test_invalid_rule_setting_error_names_the_setting(
    overrides: dict[str, object], message: str
) -> None:
    settings: dict[str, object] = {"name": "r", "limit": "10/minute", **overrides}
    with pytest.raises(ValueError, match=message):
        Rule(**settings)  # type: ignore[arg-type]


def test_get_rule_also_matches_head() -> None:
    # RFC 9110 §9.3.2: HEAD is GET without content, so it spends the same quota.
    assert "HEAD" in Rule(name="r", limit="1/s", methods=("GET",)).methods


def test_rule_sequences_become_tuples() -> None:
    rule = Rule(name="r", limit="1/s", routes=["/a"], path_prefixes=["/b"], methods=["POST"])  # type: ignore[arg-type]
    assert (rule.routes, rule.path_prefixes, rule.methods) == (("/a",), ("/b",), ("POST",))
    assert hash(rule)


def test_rule_is_frozen() -> None:
    rule = Rule(name="r", limit="1/s")
    with pytest.raises(AttributeError):
        rule.name = "other"  # type: ignore[misc]


def test_policy_field_matches_the_draft_grammar() -> None:
    rule = Rule(name="login", limit="10/10s;1000/day")
    policies = check_ratelimit_policy(rule.policy_header)
    assert policies == {
        "login-10s": {"q": 10, "w": 10},
        "login-86400s": {"q": 1000, "w": 86400},
    }


def test_single_window_policy_is_named_after_the_rule() -> None:
    assert Rule(name="api", limit="100/minute").policy_header == b'"api";q=100;w=60'


def test_policy_quota_is_stated_in_requests_of_the_rule_cost() -> None:
    rule = Rule(name="upload", limit="100/minute", cost=10)
    assert check_ratelimit_policy(rule.policy_header)["upload"]["q"] == 10


def _status(
    policy: str = "p", remaining: int = 3, reset: int = 1, violated: bool = False
) -> WindowStatus:
    return WindowStatus(policy, Window(10, 60), remaining, reset, violated)


@pytest.mark.parametrize(
    ("reset_micros", "t"),
    [(0, 0), (1, 1), (999_999, 1), (1_000_000, 1), (1_000_001, 2), (59_500_000, 60)],
)
def test_reset_rounds_up_to_whole_seconds(reset_micros: int, t: int) -> None:
    assert seconds_until(reset_micros) == t
    parsed = check_ratelimit(format_ratelimit([_status(reset=reset_micros)]))
    assert parsed["p"]["t"] == t


def test_ratelimit_field_matches_the_draft_grammar() -> None:
    value = format_ratelimit([_status("a-10s", 7, 9_200_000), _status("a-1d", 0, 5)])
    assert check_ratelimit(value) == {"a-10s": {"r": 7, "t": 10}, "a-1d": {"r": 0, "t": 1}}


@given(
    remaining=st.integers(0, 10**9),
    reset=st.integers(0, 366 * 86400 * 10**6),
    name=st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True),
)
def test_ratelimit_field_is_valid_for_any_state(remaining: int, reset: int, name: str) -> None:
    parsed = check_ratelimit(format_ratelimit([_status(name, remaining, reset)]))
    assert parsed[name] == {"r": remaining, "t": seconds_until(reset)}


@pytest.mark.parametrize(("limit", "cost"), [("10/minute", 1), ("10/10s;1000/day", 2)])
def test_rule_ratelimit_field_matches_the_general_formatter(limit: str, cost: int) -> None:
    rule = Rule(name="r", limit=limit, cost=cost)
    reply = [1, *([cost * 2, 1_500_001, 0] * len(rule.windows))]
    decision = decision_from_reply(rule, reply)
    expected = format_ratelimit(decision.statuses, cost=cost)
    assert format_rule_ratelimit(rule, decision) == expected
    check_ratelimit(expected)


def test_retry_after_is_never_earlier_than_any_violated_reset() -> None:
    decision = Decision(False, (_status("a", 0, 2_500_000, True), _status("b", 0, 7_000_001, True)))
    assert retry_after_seconds(decision) == 8


def test_retry_after_is_at_least_one_second() -> None:
    assert retry_after_seconds(Decision(False, (_status("a", 0, 0, True),))) == 1


def test_decision_reads_the_script_reply() -> None:
    rule = Rule(name="r", limit="10/10s;1000/day")
    decision = decision_from_reply(rule, [0, 10, 4_000_000, 1, 500, 80_000_000_000, 0])
    assert not decision.admitted
    assert [(s.policy, s.remaining, s.violated) for s in decision.statuses] == [
        ("r-10s", 0, True),
        ("r-86400s", 500, False),
    ]
    assert [s.policy for s in decision.violated] == ["r-10s"]


def test_quota_exceeded_body_is_a_problem_document() -> None:
    body = json.loads(quota_exceeded_body(["login-10s"]))
    assert body["type"] == QUOTA_EXCEEDED_TYPE
    assert body["status"] == 429
    assert body["violated-policies"] == ["login-10s"]
    assert body["title"]


def test_reduced_capacity_body_is_a_problem_document() -> None:
    body = json.loads(reduced_capacity_body())
    assert (body["type"], body["status"]) == (REDUCED_CAPACITY_TYPE, 503)


def test_legacy_headers_describe_the_tightest_window() -> None:
    headers = dict(format_legacy_headers([_status("a", 5, 1), _status("b", 2, 3_000_000)]))
    assert headers == {
        b"x-ratelimit-limit": b"10",
        b"x-ratelimit-remaining": b"2",
        b"x-ratelimit-reset": b"3",
    }


@pytest.mark.parametrize(
    "value",
    ['"a";r=1,', '"a";r=1 "b"', '"a";R=1', '"a\\x"', "a;r=1234567890123456", '"a";r=1.2345'],
)
def test_strict_structured_field_parser_rejects_invalid_lists(value: str) -> None:
    with pytest.raises(StructuredFieldError):
        parse_list(value)
