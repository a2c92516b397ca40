"""Time budgets and settings shared by the fault tests.

Budgets are measured, never hoped: every test times the call and allows :data:`SLACK` on
top of the configured budget, enough for a loaded 2-core CI machine (scheduling, GC, the
proxy threads) but far below what an unbounded redis-py default would cost (about a
minute against a black-holed server).
"""

from __future__ import annotations

import time
from types import TracebackType

from cachemw.valkey import ValkeySettings
from tests.support.proxied import Proxied

SLACK = 0.25
# Set-up calls before a fault (cold cluster discovery on a loaded CI box) get this budget.
WARM_UP_BUDGET = 2.0
FAULT_CLIENT_NAME = "cachemw-faults"


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.elapsed`` (seconds), even on raise."""

    def __init__(self) -> None:
        self.started = 0.0
        self.elapsed = 0.0

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.elapsed = time.perf_counter() - self.started


def fault_settings(target: Proxied, **overrides: object) -> ValkeySettings:
    """Settings for a fault test on ``target``: a short budget, a breaker that only opens on
    purpose, and the client path the test bed asks for (``target.client_overrides``)."""
    values: dict[str, object] = {
        "url": target.url,
        "command_timeout": 0.3,
        "connect_timeout": 1.0,
        "breaker_failure_threshold": 1000,
        "client_name": FAULT_CLIENT_NAME,
        **target.client_overrides,
    }
    values.update(overrides)
    return ValkeySettings(**values)  # type: ignore[arg-type]
