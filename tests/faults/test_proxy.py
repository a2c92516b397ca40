"""The fault proxy itself, against a byte-exact echo server (no Valkey needed)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cachemw.valkey.embedded import free_port
from tests.faults.budgets import SLACK, Stopwatch
from tests.support.fault_proxy import FaultProxy


class EchoServer:
    """Echoes every byte back and remembers what it received."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> EchoServer:
        self.server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.received += data
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def aclose(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = await EchoServer().start()
    try:
        yield server
    finally:
        await server.aclose()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(("127.0.0.1", echo.port)) as proxy:
        yield proxy


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*proxy.address)


async def read_exactly(reader: asyncio.StreamReader, size: int, timeout: float = 2.0) -> bytes:
    return await asyncio.wait_for(reader.readexactly(size), timeout)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def test_bytes_cross_the_proxy_unchanged_both_ways(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    payload = bytes(range(256)) * 512
    writer.write(payload)
    assert await read_exactly(reader, len(payload)) == payload
    assert proxy.stats.bytes_from_client == proxy.stats.bytes_from_server == len(payload)
    await close(writer)


async def test_latency_delays_each_chunk_by_delay_plus_or_minus_jitter(
    proxy: FaultProxy,
) -> None:
    reader, writer = await connect(proxy)
    proxy.add_latency(0.1, jitter=0.05, direction="downstream")
    with Stopwatch() as watch:
        writer.write(b"ping")
        assert await read_exactly(reader, 4) == b"ping"
    assert 0.05 <= watch.elapsed <= 0.15 + SLACK
    await close(writer)


async def test_bandwidth_limit_paces_the_transfer(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    proxy.limit_bandwidth(100_000, direction="downstream")
    with Stopwatch() as watch:
        writer.write(b"x" * 30_000)
        await read_exactly(reader, 30_000)
    assert 0.25 <= watch.elapsed <= 0.3 + SLACK + 0.2
    await close(writer)


async def test_slicing_delivers_segments_no_larger_than_the_size(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    proxy.slice_segments(3, delay=0.01, direction="downstream")
    writer.write(b"abcdefghij")
    pieces = [await asyncio.wait_for(reader.read(100), 2.0) for _ in range(4)]
    assert pieces == [b"abc", b"def", b"ghi", b"j"]
    await close(writer)


async def test_black_hole_keeps_the_socket_open_and_forwards_nothing(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    reader, writer = await connect(proxy)
    proxy.black_hole()
    writer.write(b"lost")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(100), 0.2)
    assert echo.received == b""
    assert not reader.at_eof()
    assert proxy.stats.open_links == 1
    await close(writer)


async def test_black_hole_holds_bytes_until_it_ends_like_tcp(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    reader, writer = await connect(proxy)
    hole = proxy.black_hole()
    writer.write(b"late")
    await asyncio.sleep(0.1)
    assert echo.received == b""
    proxy.clear(hole)
    assert await read_exactly(reader, 4) == b"late"
    await close(writer)


async def test_dropping_black_hole_loses_the_bytes_for_good(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    reader, writer = await connect(proxy)
    hole = proxy.black_hole(drop=True)
    writer.write(b"lost")
    await asyncio.sleep(0.1)
    proxy.clear(hole)
    writer.write(b"kept")
    assert await read_exactly(reader, 4) == b"kept"
    assert echo.received == b"kept"
    await close(writer)


async def test_black_hole_also_swallows_new_connections(proxy: FaultProxy) -> None:
    proxy.black_hole()
    reader, writer = await connect(proxy)
    writer.write(b"hello")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(100), 0.2)
    await close(writer)


async def test_reset_after_n_bytes_delivers_them_then_resets(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    proxy.reset_after(1000, direction="downstream")
    writer.write(b"y" * 5000)
    assert await read_exactly(reader, 1000) == b"y" * 1000
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 2.0)
    await close(writer)


async def test_close_after_n_bytes_delivers_them_then_ends_the_stream(
    proxy: FaultProxy,
) -> None:
    reader, writer = await connect(proxy)
    proxy.close_after(1000, direction="downstream")
    writer.write(b"z" * 5000)
    assert await asyncio.wait_for(reader.read(), 2.0) == b"z" * 1000
    await close(writer)


async def test_drop_replies_delivers_the_request_but_not_the_reply(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    reader, writer = await connect(proxy)
    fault = proxy.drop_replies(times=1)
    writer.write(b"INCR")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 2.0)
    assert echo.received == b"INCR"
    assert fault.fired == 1
    await close(writer)


async def test_times_bounds_how_often_a_cutting_fault_fires(proxy: FaultProxy) -> None:
    proxy.drop_replies(times=1)
    first_reader, first = await connect(proxy)
    first.write(b"a")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(first_reader.read(100), 2.0)
    second_reader, second = await connect(proxy)
    second.write(b"b")
    assert await read_exactly(second_reader, 1) == b"b"
    await close(first)
    await close(second)


async def test_refused_connections_get_connection_refused(proxy: FaultProxy) -> None:
    proxy.refuse_connections()
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy)
    proxy.clear()
    reader, writer = await connect(proxy)
    writer.write(b"back")
    assert await read_exactly(reader, 4) == b"back"
    await close(writer)


async def test_refusing_resets_links_that_were_open(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    writer.write(b"1")
    await read_exactly(reader, 1)
    proxy.refuse_connections()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 2.0)
    await close(writer)


async def test_every_fault_expires_by_itself(proxy: FaultProxy) -> None:
    proxy.black_hole(duration=0.2)
    proxy.refuse_connections(duration=0.2)
    await asyncio.sleep(0.3)
    reader, writer = await connect(proxy)
    writer.write(b"flows")
    assert await read_exactly(reader, 5) == b"flows"
    assert proxy.active_faults == []
    await close(writer)


async def test_clear_ends_one_fault_early_and_keeps_the_others(proxy: FaultProxy) -> None:
    latency = proxy.add_latency(0.05)
    hole = proxy.black_hole()
    proxy.clear(hole)
    assert proxy.active_faults == [latency]
    reader, writer = await connect(proxy)
    writer.write(b"ok")
    assert await read_exactly(reader, 2) == b"ok"
    await close(writer)


async def test_closing_the_proxy_leaves_no_task_or_link_behind(echo: EchoServer) -> None:
    tasks_before = asyncio.all_tasks()
    proxy = await FaultProxy(("127.0.0.1", echo.port)).start()
    links = [await connect(proxy) for _ in range(5)]
    for reader, writer in links:
        writer.write(b"x")
        await read_exactly(reader, 1)
    proxy.add_latency(0.5)
    proxy.black_hole()
    await proxy.aclose()
    assert asyncio.all_tasks() == tasks_before
    assert proxy.stats.open_links == 0
    for reader, writer in links:
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 2.0)
        await close(writer)
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy)


async def test_upstream_down_resets_the_client() -> None:
    async with FaultProxy(("127.0.0.1", free_port())) as proxy:
        reader, writer = await connect(proxy)
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await read_exactly(reader, 1)
        await close(writer)


def test_thread_form_serves_blocking_clients_and_stops_cleanly() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        upstream_port = listener.getsockname()[1]
        proxy = FaultProxy(("127.0.0.1", upstream_port)).start_in_thread()
        try:
            client = socket.create_connection(proxy.address, timeout=2)
            server_side, _ = listener.accept()
            proxy.add_latency(0.1)
            with Stopwatch() as watch:
                client.sendall(b"hi")
                server_side.sendall(server_side.recv(10))
                assert client.recv(10) == b"hi"
            assert watch.elapsed >= 0.1
            client.close()
            server_side.close()
        finally:
            proxy.close()
    assert proxy.thread is not None
    assert not proxy.thread.is_alive()


@pytest.mark.parametrize(
    ("method", "kwargs", "setting"),
    [
        ("add_latency", {"delay": -1}, "jitter <= delay"),
        ("add_latency", {"delay": 0.1, "jitter": 0.2}, "jitter <= delay"),
        ("limit_bandwidth", {"bytes_per_second": 0}, "bytes_per_second"),
        ("slice_segments", {"size": 0}, "size"),
        ("reset_after", {"n_bytes": -1}, "n_bytes"),
        ("close_after", {"n_bytes": 10, "times": 0}, "times"),
        ("black_hole", {"duration": 0}, "duration"),
        ("black_hole", {"duration": 1000}, "duration"),
        ("black_hole", {"direction": "sideways"}, "direction"),
        ("drop_replies", {"cut": "maybe"}, "cut"),
    ],
)
async def test_invalid_fault_settings_are_rejected_naming_the_setting(
    proxy: FaultProxy, method: str, kwargs: dict[str, Any], setting: str
) -> None:
    with pytest.raises(ValueError, match=setting):
        getattr(proxy, method)(**kwargs)
    assert proxy.active_faults == []


async def test_fault_methods_need_a_started_proxy() -> None:
    with pytest.raises(RuntimeError, match="start the proxy"):
        FaultProxy(("127.0.0.1", 1)).black_hole()
