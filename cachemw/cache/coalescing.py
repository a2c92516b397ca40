"""Single-flight fills: one origin call per variant, per process and across processes.

Two levels:

* in-process: the first request for a variant becomes the *flight leader*; the others
  await its outcome (a future) instead of calling Valkey at all;
* across processes: the leader takes the variant's Valkey lock (SET NX PX with a fencing
  token). A leader that finds the lock held waits for the holder's wake-up (pub/sub), then
  reads the entry the holder stored.

Every wait is bounded (``coalesce_wait``): a request never waits longer than that before
going to the app itself. The outcome handed to waiters is the entry to serve, or ``None``
("the leader's response cannot be shared, run the app yourself").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from cachemw.cache.entry import CachedResponse
from cachemw.cache.store import CacheStore
from cachemw.cache.wakeups import Wakeups

__all__ = ["FillCoordinator", "Flight"]

Outcome = CachedResponse | None
# A slow-poll fallback when the wake-up subscription cannot be confirmed.
_FALLBACK_POLL = (0.02, 0.05, 0.1, 0.2, 0.4)
_SUBSCRIBE_TIMEOUT = 0.25


class Flight:
    """One in-process flight: the future waiters await, and whether it went to the app.

    The future is made by the first follower: most flights (every plain hit) have none,
    and a future per request is measurable on the hit path.
    """

    __slots__ = ("_future", "_landed", "_outcome", "filled")

    def __init__(self) -> None:
        self._future: asyncio.Future[Outcome] | None = None
        self._landed = False
        self._outcome: Outcome = None
        self.filled = False

    @property
    def future(self) -> asyncio.Future[Outcome]:
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
            if self._landed:  # a follower late to a flight still gets its outcome
                self._future.set_result(self._outcome)
        return self._future

    def land(self, outcome: Outcome) -> None:
        self._landed, self._outcome = True, outcome
        future = self._future
        if future is not None and not future.done():
            future.set_result(outcome)


class FillCoordinator:
    """In-process flights plus the cross-process wait on a Valkey fill lock."""

    __slots__ = ("_flights", "coalesce_wait", "store", "wakeups")

    def __init__(self, store: CacheStore, *, coalesce_wait: float) -> None:
        self.store = store
        self.coalesce_wait = coalesce_wait
        self.wakeups = Wakeups(store.valkey, store.wakeup_channel)
        self._flights: dict[str, Flight] = {}

    def current_flight(self, flight_key: str) -> Flight | None:
        return self._flights.get(flight_key)

    def lead(self, flight_key: str) -> Flight:
        """Become this process's leader for ``flight_key``; always call :meth:`land`."""
        flight = Flight()
        self._flights[flight_key] = flight
        return flight

    def land(self, flight_key: str, flight: Flight, outcome: Outcome) -> None:
        """Hand ``outcome`` to every waiter of the flight and end it."""
        flight.land(outcome)
        if self._flights.get(flight_key) is flight:
            del self._flights[flight_key]

    async def follow(self, flight: Flight) -> Outcome:
        """Wait (bounded) for an in-process leader's outcome; ``None`` on timeout."""
        try:
            async with asyncio.timeout(self.coalesce_wait):
                return await asyncio.shield(flight.future)
        except TimeoutError:
            return None

    async def await_remote(
        self,
        *,
        lock_key: str,
        holder_ttl_ms: int,
        recheck: Callable[[], Awaitable[Outcome]],
    ) -> Outcome:
        """Wait for another process's fill of ``lock_key``, then read what it stored.

        Woken by pub/sub; bounded by the holder's lock TTL and ``coalesce_wait``.
        """
        loop = asyncio.get_running_loop()
        budget = min(self.coalesce_wait, holder_ttl_ms / 1000 + 0.05)
        deadline = loop.time() + budget
        woken = self.wakeups.register(lock_key)
        try:
            if await self.wakeups.subscribed(min(budget, _SUBSCRIBE_TIMEOUT)):
                # The holder may have finished before the subscription was in place.
                outcome = await recheck()
                if outcome is not None:
                    return outcome
                remaining = deadline - loop.time()
                if remaining > 0:
                    try:
                        async with asyncio.timeout(remaining):
                            await woken
                    except TimeoutError:
                        pass
                return await recheck()
            for delay in _FALLBACK_POLL:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                await asyncio.sleep(min(delay, remaining))
                outcome = await recheck()
                if outcome is not None:
                    return outcome
            return None
        finally:
            self.wakeups.forget(lock_key, woken)

    async def aclose(self) -> None:
        await self.wakeups.aclose()
        for flight in self._flights.values():
            if not flight.future.done():
                flight.future.set_result(None)
        self._flights.clear()
