"""The embedded-server helper the demo, tests and benches start Valkey with."""

from __future__ import annotations

import time

import pytest

from cachemw.valkey.embedded import EmbeddedValkey, command


def test_server_that_fails_to_start_is_reported_at_once_with_its_error() -> None:
    server = EmbeddedValkey(extra_args=["--no-such-directive", "x"])
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="Bad directive"):
        server.start(timeout=15.0)
    assert time.monotonic() - started < 5.0  # not at the 15 s deadline
    assert server.pid is None  # stopped and cleaned up


def test_started_server_answers_and_stops_by_pid() -> None:
    with EmbeddedValkey() as server:
        assert command(server.port, "PING") == "PONG"
        pid = server.pid
    assert pid is not None
    assert server.pid is None
