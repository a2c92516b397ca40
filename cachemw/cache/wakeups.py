"""Wake-ups for requests waiting on another process's fill, over Valkey pub/sub.

One subscriber connection per process listens on the cache's channel; the store and release
scripts publish the lock key when a fill ends. Waiters register a future per lock key, so a
thousand waiters cost one connection and no polling. If the subscription is down, waiters
simply run into their bounded wait and go to the app.
"""

from __future__ import annotations

import asyncio
import logging

from cachemw.valkey import Valkey, ValkeyError

__all__ = ["Wakeups"]

logger = logging.getLogger("cachemw.cache")
_RESUBSCRIBE_DELAY = 0.5
_CLOSE_TIMEOUT = 2.0


class Wakeups:
    """Per-process registry of futures woken by ``PUBLISH <channel> <lock key>``."""

    __slots__ = ("_channel", "_closed", "_failing", "_ready", "_task", "_valkey", "_waiters")

    def __init__(self, valkey: Valkey, channel: str) -> None:
        self._valkey = valkey
        self._channel = channel
        self._waiters: dict[bytes, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._failing = False
        self._closed = False

    def register(self, lock_key: str) -> asyncio.Future[None]:
        """A future resolved when ``lock_key`` is released; call :meth:`forget` after."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(lock_key.encode(), set()).add(future)
        return future

    def forget(self, lock_key: str, future: asyncio.Future[None]) -> None:
        key = lock_key.encode()
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[key]

    async def subscribed(self, timeout: float) -> bool:
        """Start the listener if needed; True once the subscription is confirmed."""
        if self._closed:
            return False
        if self._task is None or self._task.done():
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._listen(), name="cachemw-cache-wakeups")
        ready = self._ready
        assert ready is not None
        if ready.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await ready.wait()
        except TimeoutError:
            return False
        return True

    def _wake(self, key: bytes) -> None:
        for future in self._waiters.pop(key, ()):
            if not future.done():
                future.set_result(None)

    def _wake_all(self) -> None:
        for key in list(self._waiters):
            self._wake(key)

    async def _listen(self) -> None:
        ready = self._ready
        assert ready is not None

        def subscribed() -> None:
            ready.set()
            if self._failing:
                self._failing = False
                logger.info("cache wake-up subscription restored")

        while True:
            try:
                async for lock_key in self._valkey.subscribe(
                    self._channel, on_subscribed=subscribed
                ):
                    self._wake(lock_key)
            except ValkeyError as exc:
                ready.clear()
                if not self._failing:
                    self._failing = True
                    logger.warning("cache wake-up subscription lost: %s", exc)
                # Waiters re-check Valkey now rather than sleep through a lost message.
                self._wake_all()
                await asyncio.sleep(_RESUBSCRIBE_DELAY)

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # Bounded: closing a half-open subscription must not hold up shutdown.
            await asyncio.wait([task], timeout=_CLOSE_TIMEOUT)
        self._wake_all()
