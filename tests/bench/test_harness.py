"""The bench harness without load: registry, scenario apps, parsing, ratios and the table."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import socket
from itertools import groupby
from pathlib import Path

import httpx
import pytest
import redis
from redis.cluster import RedisCluster

from bench.__main__ import parse_args
from bench.apps import cpu_seconds
from bench.census import connected_local_ports, count_commands
from bench.driver import PROFILING_NOTES, redis_scheme
from bench.load import LoadSpec, build_request, parse_wrk_output, wrk_command, wrk_script
from bench.peers import ensure_peers, installed_constraints, requirement_lines
from bench.pyload import ResponseError, percentile, read_response
from bench.registry import BASELINE, SCENARIOS, Scenario, select
from bench.report import (
    BurstMeasurement,
    Measurement,
    Row,
    format_burst_table,
    format_notes,
    format_table,
    ratio,
    results_markdown,
    summarise_burst,
    summarise_scenario,
)
from bench.rounds import BASELINE_EVERY, rotated, schedule
from bench.scenarios._common import PAYLOAD, PAYLOAD_BYTES
from bench.settings import BenchSettings
from bench.valkey_stats import ValkeyCounters, ValkeyStats, commands_between

# --- registry -----------------------------------------------------------------------------


def test_scenario_names_are_unique() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))


def test_baseline_is_registered_and_needs_no_valkey() -> None:
    baseline = next(s for s in SCENARIOS if s.name == BASELINE)
    assert baseline.group == "baseline"
    assert not baseline.needs_valkey


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_registered_scenario_module_builds_an_asgi_app(scenario: Scenario) -> None:
    for module in scenario.requires:
        pytest.importorskip(module, reason=f"peer {module} not installed (bench-only)")
    app = getattr(importlib.import_module(scenario.module), scenario.attribute)
    assert callable(app)
    # An ASGI app is a coroutine function or an object whose __call__ is one.
    assert asyncio.iscoroutinefunction(app) or asyncio.iscoroutinefunction(type(app).__call__)


def test_every_scenario_module_is_registered() -> None:
    directory = Path(__file__).resolve().parents[2] / "bench" / "scenarios"
    modules = {p.stem for p in directory.glob("*.py") if not p.stem.startswith("_")}
    registered = {s.module.rsplit(".", 1)[1] for s in SCENARIOS}
    assert modules == registered


@pytest.mark.parametrize("name", ["plain_json", "plain_bytes"])
async def test_baseline_scenarios_serve_the_same_one_kilobyte_document(name: str) -> None:
    scenario = next(s for s in SCENARIOS if s.name == name)
    app = getattr(importlib.import_module(scenario.module), scenario.attribute)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        response = await client.get(scenario.path)
    assert response.status_code == 200
    assert response.json() == PAYLOAD
    assert 900 <= len(response.content) <= 1200
    assert json.loads(PAYLOAD_BYTES) == PAYLOAD


def test_selection_runs_the_baseline_first_even_when_not_asked_for() -> None:
    chosen = select(quick=False, only=("plain_bytes",))
    assert [s.name for s in chosen] == [BASELINE, "plain_bytes"]


def test_quick_selection_is_the_quick_subset_with_the_baseline() -> None:
    chosen = select(quick=True)
    assert chosen[0].name == BASELINE
    assert all(s.quick or s.name == BASELINE for s in chosen)


def test_selecting_an_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="plain_json"):
        select(quick=False, only=("no_such_scenario",))


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"app": "bench.scenarios.plain_json"}, "app"),
        ({"method": "FETCH"}, "method"),
        ({"path": "no-slash"}, "path"),
        ({"warmup_requests": -1}, "warmup_requests"),
        ({"expect_status": 99}, "expect_status"),
    ],
)
def test_invalid_scenario_is_rejected_naming_the_setting(
    overrides: dict[str, object], setting: str
) -> None:
    fields: dict[str, object] = {
        "name": "ok",
        "app": "bench.scenarios.plain_json:app",
        "description": "d",
        "group": "baseline",
    }
    with pytest.raises(ValueError, match=setting):
        Scenario(**{**fields, **overrides})  # type: ignore[arg-type]


def test_burst_scenario_needs_a_cold_key_token_and_an_origin_counter() -> None:
    with pytest.raises(ValueError, match="token"):
        Scenario(
            name="s", app="m:app", description="d", group="peer", path="/items/1", burst=500,
            origin_calls_path="/_bench/origin-calls",
        )  # fmt: skip


def test_burst_path_gets_a_fresh_token() -> None:
    scenario = Scenario(
        name="s", app="m:app", description="d", group="peer", path="/items/{token}", burst=5,
        origin_calls_path="/_bench/origin-calls",
    )  # fmt: skip
    assert scenario.path_for("cold-1") == "/items/cold-1"


# --- settings and CLI ---------------------------------------------------------------------


def test_quick_flag_means_one_short_round() -> None:
    settings = parse_args(["--quick"])
    assert (settings.quick, settings.rounds, settings.duration) == (True, 1, 2.0)


def test_full_run_defaults_to_three_rounds_and_writes_bench_results() -> None:
    settings = parse_args([])
    assert settings.rounds == 3
    assert settings.results_path().name == "RESULTS.md"
    assert settings.results_path().parent.name == "bench"


def test_partial_runs_do_not_overwrite_the_committed_results() -> None:
    assert parse_args(["--quick"]).results_path().parent.name == ".work"
    assert parse_args(["--only", "plain_bytes"]).results_path().parent.name == ".work"


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [({"threads": 3}, "threads"), ({"rounds": 0}, "rounds"), ({"generator": "ab"}, "generator")],
)
def test_invalid_bench_settings_are_rejected(overrides: dict[str, object], setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        BenchSettings(**overrides)  # type: ignore[arg-type]


def test_round_order_rotates_so_no_scenario_always_runs_first() -> None:
    items = ["a", "b", "c"]
    assert [rotated(items, n) for n in range(3)] == [items, ["b", "c", "a"], ["c", "a", "b"]]


# --- wrk ----------------------------------------------------------------------------------

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:40000/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.97ms  713.42us  30.12ms   93.10%
    Req/Sec     6.45k   210.11     6.80k    80.00%
  Latency Distribution
     50%  850.00us
     75%    5.01ms
     90%    5.40ms
     99%    1.20s
  32094 requests in 5.01s, 38.29MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   6405.99
Transfer/sec:      7.64MB
"""


def test_wrk_output_is_parsed_with_its_units() -> None:
    result = parse_wrk_output(WRK_OUTPUT)
    assert result.requests == 32094
    assert result.seconds == pytest.approx(5.01)
    assert result.p50_ms == pytest.approx(0.85)
    assert result.p99_ms == pytest.approx(1200.0)
    assert result.errors == 10
    assert result.rps == pytest.approx(32094 / 5.01)


def test_wrk_output_without_latency_distribution_is_an_error() -> None:
    head = WRK_OUTPUT.partition("  Latency Distribution")[0]
    text = head + "  10 requests in 1.00s, 1KB read\n"
    with pytest.raises(ValueError, match="latency"):
        parse_wrk_output(text)


def test_wrk_gets_a_script_only_for_a_method_or_body() -> None:
    get = LoadSpec(host="127.0.0.1", port=1, path="/")
    post = LoadSpec(host="127.0.0.1", port=1, path="/", method="POST", body=b'{"a":1}')
    assert wrk_script(get) is None
    script = wrk_script(post)
    assert script is not None
    assert 'wrk.method = "POST"' in script
    assert "wrk.body" in script


def test_wrk_command_sends_the_session_cookie_and_latency_flag() -> None:
    spec = LoadSpec(host="127.0.0.1", port=8000, path="/x", headers=(("Cookie", "s=1"),))
    command = wrk_command(spec, script_path=None)
    assert "--latency" in command
    assert command[command.index("--header") + 1] == "Cookie: s=1"
    assert command[-1] == "http://127.0.0.1:8000/x"


# --- the Python load client's parsing (no network) ---------------------------------------


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_python_client_reads_a_content_length_response_then_the_next() -> None:
    reader = _reader(
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
        b"HTTP/1.1 429 Too Many\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    assert await read_response(reader) == (200, False)
    assert await read_response(reader) == (429, True)


async def test_python_client_reads_a_chunked_response() -> None:
    reader = _reader(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n"
    )
    assert await read_response(reader) == (200, False)
    assert await read_response(reader) == (304, False)


async def test_python_client_rejects_a_malformed_status_line() -> None:
    with pytest.raises(ResponseError):
        await read_response(_reader(b"SPDY/9 ok\r\n\r\n"))


def test_python_client_request_carries_headers_and_body() -> None:
    spec = LoadSpec(
        host="127.0.0.1", port=9, path="/p", method="POST", headers=(("A", "b"),), body=b"xy"
    )
    assert build_request(spec) == (
        b"POST /p HTTP/1.1\r\nHost: 127.0.0.1:9\r\nA: b\r\nContent-Length: 2\r\n\r\nxy"
    )


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) == 0.0


# --- measurements, ratios and the table ---------------------------------------------------


def _measurement(
    name: str, round_index: int, requests: int, cpu: float = 1.0, slot: int = 0
) -> Measurement:
    return Measurement(
        scenario=name,
        round=round_index,
        slot=slot,
        requests=requests,
        seconds=1.0,
        p50_ms=1.0,
        p99_ms=2.0,
        errors=0,
        app_cpu_seconds=cpu,
        valkey_commands=requests,
        valkey_cpu_seconds=0.0,
    )


def test_ratio_is_taken_against_the_baseline_runs_around_it() -> None:
    # The machine slows down during round 0 and more in round 1; each ratio sees through it
    # by comparing with the mean of the baseline runs just before and after (always 0.5).
    baselines = [
        _measurement(BASELINE, 0, 1200, slot=0),
        _measurement(BASELINE, 0, 800, slot=2),
        _measurement(BASELINE, 1, 400, slot=4),
    ]
    measured = [_measurement("x", 0, 500, slot=1), _measurement("x", 1, 300, slot=3)]
    row = summarise_scenario("x", "d", measured, baselines)
    assert row.ratio == pytest.approx(0.5)
    assert row.rps == pytest.approx(400.0)
    assert row.commands == pytest.approx(1.0)


def test_ratio_uses_the_one_baseline_run_on_its_only_side() -> None:
    baselines = [_measurement(BASELINE, 0, 1000, slot=0)]
    row = summarise_scenario("x", "d", [_measurement("x", 0, 250, slot=1)], baselines)
    assert row.ratio == pytest.approx(0.25)


def test_baseline_row_is_its_own_reference() -> None:
    baselines = [_measurement(BASELINE, 0, 1000, slot=0), _measurement(BASELINE, 0, 500, slot=2)]
    assert summarise_scenario(BASELINE, "d", baselines, baselines).ratio == pytest.approx(1.0)


def test_cpu_per_request_ratio_compares_cost_not_throughput() -> None:
    baselines = [_measurement(BASELINE, 0, 1000, cpu=0.25, slot=0)]
    row = summarise_scenario("x", "d", [_measurement("x", 0, 500, cpu=0.25, slot=1)], baselines)
    assert row.cpu_us == pytest.approx(500.0)
    assert row.cpu_ratio == pytest.approx(2.0)


def test_schedule_brackets_every_few_runs_with_the_baseline() -> None:
    names = [BASELINE, *(f"s{i}" for i in range(2 * BASELINE_EVERY + 1))]
    order = schedule(names, 2, baseline=BASELINE)
    runs = [name for _, name in order]
    assert runs[0] == runs[-1] == BASELINE
    gaps = [len(list(group)) for is_base, group in groupby(runs, key=lambda n: n == BASELINE)
            if not is_base]  # fmt: skip
    assert max(gaps) <= BASELINE_EVERY
    # Every scenario once per round; rounds start with another scenario (rotation).
    for round_index in range(2):
        in_round = [name for r, name in order if r == round_index and name != BASELINE]
        assert sorted(in_round) == sorted(names[1:])
    first_of_round = [next(n for r, n in order if r == i and n != BASELINE) for i in range(2)]
    assert first_of_round[0] != first_of_round[1]


def test_ratio_without_a_baseline_is_zero_not_an_error() -> None:
    assert ratio(10.0, 0.0) == 0.0


def test_table_shows_ratios_and_marks_skipped_scenarios() -> None:
    rows = [
        Row(name=BASELINE, description="d", rounds=3, rps=3000.0, ratio=1.0, cpu_us=250.0),
        Row(name="peer", description="d", skipped="peer not importable: x"),
    ]
    table = format_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| scenario")
    assert "3,000" in lines[2]
    assert "1.00x" in lines[2]
    assert "skipped" in lines[3]
    assert "peer not importable: x" in format_notes(rows)
    assert len({len(line) for line in lines}) == 1  # aligned columns


def test_commands_per_request_off_the_design_are_flagged() -> None:
    baseline = [_measurement(BASELINE, 0, 1000)]
    hit = summarise_scenario(
        "hit", "d", [_measurement("hit", 0, 10)], baseline, app_commands=1.0, design_commands=1
    )
    untouched = summarise_scenario(
        "untouched", "d", [_measurement("untouched", 0, 10)], baseline,
        app_commands=1.0, design_commands=0,
    )  # fmt: skip
    assert not hit.off_design
    assert untouched.off_design
    notes = format_notes([hit, untouched])
    assert "`untouched`: 1.00 Valkey commands per request" in notes
    assert "`hit`" not in notes
    assert "1.00 !" in format_table([hit, untouched]).splitlines()[3]


def test_notes_pass_on_what_an_app_logged() -> None:
    notes = format_notes([], logged={"hit": "Valkey circuit breaker opened 2 time(s)"})
    assert notes == "- `hit` logged: Valkey circuit breaker opened 2 time(s)"


def test_monitor_census_counts_the_apps_commands_but_not_script_calls_or_others() -> None:
    lines = [
        b'1700000000.000001 [0 127.0.0.1:50001] "EVALSHA" "abc" "1" "k"',
        b'1700000000.000002 [0 lua] "ZADD" "k" "1" "m"',
        b'1700000000.000003 [0 lua] "ZCOUNT" "k" "0" "1"',
        b'1700000000.000004 [0 127.0.0.1:50002] "HMGET" "k" "a"',
        b'1700000000.000005 [0 127.0.0.1:60000] "PING"',  # another app's connection
        b"garbage",
    ]
    assert count_commands(lines, {50001, 50002}) == 2


def test_census_finds_the_processes_connections_to_a_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            local_port = client.getsockname()[1]
            assert connected_local_ports(os.getpid(), port) == {local_port}


def test_stampede_row_reports_the_worst_rounds_origin_calls() -> None:
    bursts = [
        BurstMeasurement(
            scenario="s",
            round=r,
            requests=500,
            errors=0,
            origin_calls=calls,
            p50_ms=60.0,
            p99_ms=p99,
        )
        for r, (calls, p99) in enumerate([(1, 100.0), (3, 120.0), (1, 110.0)])
    ]
    row = summarise_burst("s", "d", bursts, origin_ms=50.0)
    assert row.origin_calls == 3
    assert row.p99_ms == pytest.approx(110.0)
    cells = [cell.strip() for cell in format_burst_table([row]).splitlines()[2].split("|")]
    assert cells[1:-1] == ["s", "500", "3", "60.0", "110.0", "2.2x", "0"]


def test_results_file_has_table_machine_info_and_date() -> None:
    text = results_markdown(
        title="t", table="| a |", notes="", descriptions="- `a`: d", machine=[("date", "D")]
    )
    assert "| a |" in text
    assert "- date: D" in text


def test_results_file_ends_with_the_profiling_notes() -> None:
    text = results_markdown(
        title="t",
        table="| a |",
        notes="",
        descriptions="- `a`: d",
        machine=[("date", "D")],
        profiling="## Profiling\n\nfound X\n",
    )
    assert text.index("- date: D") < text.index("## Profiling") < text.index("found X")


def test_committed_profiling_notes_are_found_by_the_driver() -> None:
    assert PROFILING_NOTES.read_text().startswith("## Profiling")


# --- peers and Valkey counters ------------------------------------------------------------


def test_scenario_whose_peer_cannot_be_imported_is_skipped_with_the_reason(
    tmp_path: Path,
) -> None:
    scenario = Scenario(
        name="ghost", app="m:app", description="d", group="peer",
        requires=("bench_no_such_peer_module",),
    )  # fmt: skip
    skipped = ensure_peers([scenario], work_dir=tmp_path, install=False)
    assert skipped == {
        "ghost": "peer not importable: bench_no_such_peer_module (peer install disabled)"
    }


def test_peer_requirements_are_pinned_lines_without_comments() -> None:
    lines = requirement_lines()
    assert lines
    assert all("==" in line and "#" not in line for line in lines)


def test_peer_installs_are_constrained_to_the_installed_redis_and_never_pin_cachemw() -> None:
    constraints = installed_constraints().lower().splitlines()
    assert any(line.startswith("redis==") for line in constraints)
    assert not any(line.startswith("cachemw==") for line in constraints)


def test_commands_between_snapshots_exclude_the_info_call() -> None:
    before = ValkeyCounters(commands=100, cpu_seconds=0.0, info_calls=1)
    after = ValkeyCounters(commands=111, cpu_seconds=0.0, info_calls=1)
    assert commands_between(before, after) == 10


def test_valkey_stats_count_the_commands_sent_between_snapshots(
    valkey_url: str, valkey_sync: redis.Redis | RedisCluster
) -> None:
    keys = [f"bench:{index}" for index in range(5)]
    for key in keys:  # open the client's connections (their handshake commands) beforehand
        valkey_sync.set(key, b"x")
    with ValkeyStats(valkey_url) as stats:
        before = stats.snapshot()
        for key in keys:
            valkey_sync.set(key, b"y")
        after = stats.snapshot()
        assert commands_between(before, after) == 5
        assert stats.server_version().startswith("Valkey ")


def test_cpu_seconds_reads_this_process_from_proc() -> None:
    assert cpu_seconds(os.getpid()) > 0.0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("valkey://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("valkeys://h:1", "rediss://h:1"),
        ("redis://h:1/2", "redis://h:1/2"),
    ],
)
def test_scenarios_get_valkey_urls_spelled_the_way_redis_py_knows(url: str, expected: str) -> None:
    assert redis_scheme(url) == expected
