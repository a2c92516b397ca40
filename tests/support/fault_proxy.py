"""A fault-injecting TCP proxy for tests: real bytes between a client and a real Valkey.

toxiproxy cannot be installed here, so this is a small pure-asyncio stand-in. Every byte
between the client and the server crosses two pumps (client→server "upstream",
server→client "downstream", see ``fault_link.py``); faults (``faults.py``) are looked up per
chunk, so a fault added now also hits connections the client pooled earlier.

Two ways to run it:

* inside the test's event loop: ``async with FaultProxy(("127.0.0.1", port)) as proxy: ...``
* in a thread with its own loop (sync fixtures, cluster nodes that outlive one test's
  loop): ``proxy = FaultProxy(upstream).start_in_thread(); ...; proxy.close()``

Fault methods are plain (non-async) and thread-safe: they take effect before they return,
from the loop's thread or any other. Every fault expires by itself after ``duration``
seconds and can be cleared early with :meth:`FaultProxy.clear`. Closing the proxy closes
every socket and awaits every task it started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from tests.support.fault_link import Link, abort_with_rst
from tests.support.faults import (
    DEFAULT_DURATION,
    Cut,
    Direction,
    Fault,
    FaultBook,
    FaultKind,
    ProxyStats,
    check_direction,
    check_duration,
)

T = TypeVar("T")
LOOPBACK = "127.0.0.1"


class FaultProxy:
    """A TCP proxy on a loopback port in front of ``upstream`` (host, port)."""

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        listen_port: int = 0,
        connect_timeout: float = 2.0,
    ) -> None:
        self.upstream = upstream
        self.connect_timeout = connect_timeout
        self._port = listen_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._listen_generation = 0
        self._listen_tasks: set[asyncio.Task[None]] = set()
        self._link_tasks: set[asyncio.Task[None]] = set()
        self._links: set[Link] = set()
        self._book = FaultBook()
        self._refusing = False
        self._refuse_timer: asyncio.TimerHandle | None = None
        self._accepted = 0
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the proxy has no port before start()")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)

    @property
    def thread(self) -> threading.Thread | None:
        """The thread running the proxy's loop (thread form only)."""
        return self._thread

    @property
    def url(self) -> str:
        """A standalone Valkey URL through this proxy."""
        return f"redis://{LOOPBACK}:{self.port}/0"

    async def start(self) -> FaultProxy:
        self._loop = asyncio.get_running_loop()
        sock = self._bind()
        self._server = await asyncio.start_server(self._serve, sock=sock)
        return self

    async def aclose(self) -> None:
        """Close the listener, every link and every task this proxy started."""
        self._closed = True
        self._book.faults.clear()
        if self._refuse_timer is not None:
            self._refuse_timer.cancel()
        self._stop_listening()
        for link in list(self._links):
            link.cut("reset")
        tasks = self._link_tasks | self._listen_tasks
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def start_in_thread(self, timeout: float = 5.0) -> FaultProxy:
        """Run the proxy on a loop of its own in a daemon thread; stop it with :meth:`close`."""
        started: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                started.set_exception(exc)
                loop.close()
                return
            started.set_result(None)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"fault-proxy-{self._port}", daemon=True)
        self._thread.start()
        started.result(timeout)
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop a proxy started with :meth:`start_in_thread` (from any other thread)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            raise RuntimeError("close() is for start_in_thread(); in a loop, await aclose()")
        if thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK, self._port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._port = int(sock.getsockname()[1])
        return sock

    def _listen_again(self) -> None:
        # The socket listens before this returns (connections wait in the backlog), so a
        # test may connect right after clear(); asyncio starts accepting on the next turn.
        generation = self._listen_generation
        sock = self._bind()

        async def serve() -> None:
            try:
                server = await asyncio.start_server(self._serve, sock=sock)
            except BaseException:
                sock.close()
                raise
            if generation != self._listen_generation or self._closed:
                server.close()  # refused again (or closed) while we were starting
            else:
                self._server = server

        task = asyncio.get_running_loop().create_task(serve())
        self._listen_tasks.add(task)
        task.add_done_callback(self._listen_tasks.discard)

    def _stop_listening(self) -> None:
        self._listen_generation += 1
        server, self._server = self._server, None
        if server is not None:
            server.close()  # stops listening now: new connections are refused by the kernel

    # -- faults (thread-safe, effective on return) ---------------------------------------

    def add_latency(
        self,
        delay: float,
        *,
        jitter: float = 0.0,
        direction: Direction = "downstream",
        duration: float = DEFAULT_DURATION,
    ) -> Fault:
        """Delay each chunk by ``delay`` ± ``jitter`` seconds (order is kept)."""
        if delay < 0 or jitter < 0 or jitter > delay:
            raise ValueError(f"need 0 <= jitter <= delay, got delay={delay!r} jitter={jitter!r}")
        return self._add(FaultKind.LATENCY, direction, duration, delay=delay, jitter=jitter)

    def limit_bandwidth(
        self,
        bytes_per_second: float,
        *,
        direction: Direction = "downstream",
        duration: float = DEFAULT_DURATION,
    ) -> Fault:
        if bytes_per_second <= 0:
            raise ValueError(f"bytes_per_second must be > 0, got {bytes_per_second!r}")
        return self._add(FaultKind.BANDWIDTH, direction, duration, rate=bytes_per_second)

    def slice_segments(
        self,
        size: int,
        *,
        delay: float = 0.0,
        direction: Direction = "both",
        duration: float = DEFAULT_DURATION,
    ) -> Fault:
        """Forward in segments of at most ``size`` bytes, ``delay`` seconds apart."""
        if size < 1 or delay < 0:
            raise ValueError(f"need size >= 1 and delay >= 0, got size={size!r} delay={delay!r}")
        return self._add(FaultKind.SLICING, direction, duration, size=size, delay=delay)

    def black_hole(
        self,
        *,
        direction: Direction = "both",
        drop: bool = False,
        duration: float = DEFAULT_DURATION,
    ) -> Fault:
        """Keep sockets open (and accept new ones) but forward nothing.

        By default the bytes are held and flow, in order, once the fault ends: a network
        partition that heals before TCP gives up (TCP never loses bytes on a live
        connection). ``drop=True`` discards them instead, as toxiproxy's ``timeout`` toxic
        does: only a broken middlebox does that to a live TCP stream.
        """
        return self._add(FaultKind.BLACK_HOLE, direction, duration, drop=drop)

    def reset_after(
        self,
        n_bytes: int,
        *,
        direction: Direction = "downstream",
        times: int | None = None,
        duration: float = DEFAULT_DURATION,
    ) -> Fault:
        """Forward ``n_bytes`` more bytes on each link, then reset both sides (RST)."""
        return self._cut_after(FaultKind.RESET_AFTER, n_bytes, direction, times, duration)

    def close_after(
        self,
        n_bytes: int,
        *,
        direction: Direction = "downstream",
        times: int | None = None,
        duration: float = DEFAULT_DURATION,
    ) -> Fault:
        """Forward ``n_bytes`` more bytes on each link, then close both sides (FIN)."""
        return self._cut_after(FaultKind.CLOSE_AFTER, n_bytes, direction, times, duration)

    def drop_replies(
        self, *, cut: Cut = "reset", times: int | None = None, duration: float = DEFAULT_DURATION
    ) -> Fault:
        """Deliver requests, drop what the server answers, then ``cut`` the link.

        The server has run the command; the client never learns the result. With
        ``cut="none"`` the link stays open and every reply chunk is dropped while active.
        """
        if cut not in ("reset", "close", "none"):
            raise ValueError(f"cut must be 'reset', 'close' or 'none', got {cut!r}")
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times!r}")
        return self._add(FaultKind.DROP_REPLY, "downstream", duration, cut=cut, times=times)

    def refuse_connections(
        self, *, duration: float = DEFAULT_DURATION, reset_existing: bool = True
    ) -> None:
        """Stop listening (connects get ECONNREFUSED), resetting open links by default."""
        check_duration(duration)

        def apply() -> None:
            loop = asyncio.get_running_loop()
            self._refusing = True
            self._stop_listening()
            if reset_existing:
                for link in list(self._links):
                    link.cut("reset")
            if self._refuse_timer is not None:
                self._refuse_timer.cancel()
            self._refuse_timer = loop.call_later(duration, self._accept_again)

        self._in_loop(apply)

    def clear(self, fault: Fault | None = None) -> None:
        """End one fault early, or (without an argument) every fault including refusal."""

        def apply() -> None:
            if fault is not None:
                with contextlib.suppress(ValueError):
                    self._book.faults.remove(fault)
                return
            self._book.faults.clear()
            if self._refusing:
                self._accept_again()

        self._in_loop(apply)

    def reset_links(self) -> None:
        """Reset every open link now (as a server restart would), keep listening."""

        def apply() -> None:
            for link in list(self._links):
                link.cut("reset")

        self._in_loop(apply)

    @property
    def stats(self) -> ProxyStats:
        return self._in_loop(
            lambda: ProxyStats(
                accepted=self._accepted,
                open_links=len(self._links),
                bytes_from_client=self._book.bytes_from_client,
                bytes_from_server=self._book.bytes_from_server,
            )
        )

    @property
    def active_faults(self) -> list[Fault]:
        now = time.monotonic()
        return self._in_loop(lambda: [f for f in self._book.faults if f.is_active(now)])

    @property
    def is_refusing(self) -> bool:
        return self._refusing

    def _accept_again(self) -> None:
        if self._refuse_timer is not None:
            self._refuse_timer.cancel()
            self._refuse_timer = None
        if self._refusing and not self._closed:
            self._refusing = False
            self._listen_again()

    def _cut_after(
        self,
        kind: FaultKind,
        n_bytes: int,
        direction: Direction,
        times: int | None,
        duration: float,
    ) -> Fault:
        if n_bytes < 0:
            raise ValueError(f"n_bytes must be >= 0, got {n_bytes!r}")
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times!r}")
        return self._add(kind, direction, duration, after_bytes=n_bytes, times=times)

    def _add(
        self,
        kind: FaultKind,
        direction: str,
        duration: float,
        **values: float | int | str | bool | None,
    ) -> Fault:
        fault = Fault(
            kind=kind,
            direction=check_direction(direction),
            expires_at=time.monotonic() + check_duration(duration),
            **values,  # type: ignore[arg-type]
        )
        self._in_loop(lambda: self._book.faults.append(fault))
        return fault

    def _in_loop(self, action: Callable[[], T]) -> T:
        """Run ``action`` on the proxy's loop and return its result, from any thread."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("start the proxy before injecting faults")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return action()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(action())
            except BaseException as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return done.result(timeout=5.0)

    # -- the data path ------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._link_tasks.add(task)
        self._accepted += 1
        try:
            if self._refusing or self._closed:
                abort_with_rst(writer)
                return
            try:
                server_reader, server_writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.upstream), self.connect_timeout
                )
            except (OSError, TimeoutError):
                abort_with_rst(writer)  # the server behind us is down: so are we
                return
            link = Link(writer, server_writer, self._book)
            self._links.add(link)
            try:
                await link.run(reader, server_reader)
            finally:
                self._links.discard(link)
                link.cut("close")
                for side in (writer, server_writer):
                    with contextlib.suppress(Exception):
                        await side.wait_closed()
        except asyncio.CancelledError:
            # aclose() cancels links; asyncio's start_server callback would log a cancelled
            # handler task as an error, and nobody awaits this task except aclose().
            pass
        finally:
            self._link_tasks.discard(task)
