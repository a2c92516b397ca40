"""A circuit breaker shared by every feature that talks to Valkey.

After ``failure_threshold`` consecutive failures the breaker opens: calls fail fast without
touching the network for ``reset_timeout`` seconds. Then one probe is let through
(half-open); its success closes the breaker, its failure opens it again. State changes are
logged once each, never per request.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

logger = logging.getLogger("cachemw.valkey")


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Consecutive-failure breaker; time comes from an injectable monotonic clock."""

    __slots__ = (
        "_clock",
        "_failures",
        "_listeners",
        "_opened_at",
        "_probe_in_flight",
        "_state",
        "failure_threshold",
        "name",
        "reset_timeout",
    )

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 2.0,
        name: str = "valkey",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"breaker_failure_threshold must be >= 1, got {failure_threshold}")
        if reset_timeout <= 0:
            raise ValueError(f"breaker_reset_timeout must be > 0 seconds, got {reset_timeout}")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.name = name
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._listeners: list[Callable[[BreakerState], None]] = []

    @property
    def state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            return BreakerState.HALF_OPEN
        return self._state

    def on_state_change(self, listener: Callable[[BreakerState], None]) -> None:
        """Call ``listener(new_state)`` on every transition (e.g. to flush a near cache)."""
        self._listeners.append(listener)

    def allow(self) -> bool:
        """May a call go to the network now? In half-open state only one probe may."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if not self._open_elapsed():
                return False
            self._transition(BreakerState.HALF_OPEN)
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            self._probe_in_flight = False
            self._transition(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            self._opened_at = self._clock()
            self._transition(BreakerState.OPEN)
        elif self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self._transition(BreakerState.OPEN)

    def release_probe(self) -> None:
        """A probe ended without a verdict (e.g. cancelled): let another one try."""
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False

    def _open_elapsed(self) -> bool:
        return self._clock() - self._opened_at >= self.reset_timeout

    def _transition(self, new_state: BreakerState) -> None:
        old_state, self._state = self._state, new_state
        if old_state is new_state:
            return
        if new_state is BreakerState.OPEN:
            logger.warning(
                "%s breaker opened after %d consecutive failures; failing fast for %.1fs",
                self.name,
                self._failures,
                self.reset_timeout,
            )
        elif new_state is BreakerState.CLOSED:
            logger.warning("%s breaker closed: Valkey answers again", self.name)
        else:
            logger.info("%s breaker half-open: probing Valkey", self.name)
        for listener in self._listeners:
            listener(new_state)
