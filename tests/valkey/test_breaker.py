"""The circuit breaker's state machine, on an injected clock."""

from __future__ import annotations

import logging

import pytest

from cachemw.valkey.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_breaker(clock: FakeClock, threshold: int = 3) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=threshold, reset_timeout=5.0, clock=clock)


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_success_resets_the_consecutive_failure_count() -> None:
    breaker = make_breaker(FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_open_breaker_lets_exactly_one_probe_through_after_reset_timeout() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, threshold=1)
    breaker.record_failure()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # a second caller while the probe is in flight


def test_successful_probe_closes_the_breaker() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, threshold=1)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_failed_probe_reopens_for_another_reset_timeout() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, threshold=1)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 4
    assert not breaker.allow()


def test_cancelled_probe_lets_another_probe_try() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, threshold=1)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.release_probe()
    assert breaker.allow()


def test_state_changes_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, threshold=2)
    with caplog.at_level(logging.INFO, logger="cachemw.valkey"):
        for _ in range(50):
            breaker.record_failure()
            breaker.allow()
    opened = [r for r in caplog.records if "opened" in r.getMessage()]
    assert len(opened) == 1


def test_listeners_hear_every_transition() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, threshold=1)
    seen: list[BreakerState] = []
    breaker.on_state_change(seen.append)
    breaker.record_failure()
    clock.now += 5
    breaker.allow()
    breaker.record_success()
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


@pytest.mark.parametrize(("threshold", "reset"), [(0, 1.0), (1, 0.0)])
def test_invalid_breaker_settings_are_rejected(threshold: int, reset: float) -> None:
    with pytest.raises(ValueError, match="breaker_"):
        CircuitBreaker(failure_threshold=threshold, reset_timeout=reset)
