"""One proxied connection: two pumps that apply a :class:`FaultBook` to every chunk."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time

from tests.support.faults import Cut, Direction, FaultBook, FaultKind

_CHUNK = 65536


def abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN: "connection reset by peer", as a crash would cause."""
    # SO_LINGER with a zero timeout is what turns close() into a reset.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Link:
    """The client's socket and ours to the server, pumped in both directions."""

    __slots__ = ("book", "client", "counters", "server")

    def __init__(
        self, client: asyncio.StreamWriter, server: asyncio.StreamWriter, book: FaultBook
    ) -> None:
        self.client = client
        self.server = server
        self.book = book
        self.counters: dict[int, int] = {}  # fault id -> bytes seen since the fault began

    def cut(self, how: Cut) -> None:
        for writer in (self.client, self.server):
            if how == "reset":
                abort_with_rst(writer)
            else:
                writer.close()

    async def run(self, client: asyncio.StreamReader, server: asyncio.StreamReader) -> None:
        """Pump until either side ends or a fault cuts the link."""
        pumps = [
            asyncio.create_task(self._pump("upstream", client, self.server)),
            asyncio.create_task(self._pump("downstream", server, self.client)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(
        self, direction: Direction, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    return
                self.book.count(direction, len(data))
                if not await self._forward(direction, data, writer):
                    return

    async def _forward(
        self, direction: Direction, data: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """Apply the active faults to one chunk; False when the link was cut."""
        while hole := self.book.black_hole(direction):
            if hole.drop:
                return True
            await asyncio.sleep(0.005)  # held: stop reading, so TCP pushes back
        faults = self.book.active(direction)
        delay, rate, segment, gap = 0.0, 0.0, len(data), 0.0
        for fault in faults:
            if fault.kind is FaultKind.LATENCY:
                delay += max(0.0, fault.delay + random.uniform(-fault.jitter, fault.jitter))
            elif fault.kind is FaultKind.BANDWIDTH:
                rate = fault.rate if not rate else min(rate, fault.rate)
            elif fault.kind is FaultKind.SLICING:
                segment, gap = min(segment, fault.size), max(gap, fault.delay)
        if delay:
            await asyncio.sleep(delay)
        for fault in faults:
            if fault.kind is FaultKind.DROP_REPLY and fault.is_active(time.monotonic()):
                fault.fired += 1
                if fault.cut != "none":
                    self.cut(fault.cut)
                    return False
                return True
            if fault.kind in (FaultKind.RESET_AFTER, FaultKind.CLOSE_AFTER):
                seen = self.counters.get(fault.id, 0)
                remaining = fault.after_bytes - seen
                if len(data) >= remaining and fault.is_active(time.monotonic()):
                    fault.fired += 1
                    await _write(writer, data[: max(remaining, 0)], rate, segment, gap)
                    self.cut("reset" if fault.kind is FaultKind.RESET_AFTER else "close")
                    return False
                self.counters[fault.id] = seen + len(data)
        await _write(writer, data, rate, segment, gap)
        return True


async def _write(
    writer: asyncio.StreamWriter, data: bytes, rate: float, segment: int, gap: float
) -> None:
    if rate:
        # ~20 ms worth of bytes per write keeps the pacing smooth without busy-looping.
        segment = min(segment, max(1, int(rate * 0.02)))
    segment = max(segment, 1)
    for start in range(0, len(data), segment):
        piece = data[start : start + segment]
        writer.write(piece)
        await writer.drain()
        is_last = start + segment >= len(data)
        pause = max(0.0 if is_last else gap, len(piece) / rate if rate else 0.0)
        if pause:
            await asyncio.sleep(pause)
