"""Wrapping the app's ``send``: forward to the client as bytes come, tee into an entry.

The client never waits for the cache: each body chunk is forwarded as soon as the app sends
it. Recording is abandoned (not the response) when the body grows past the cap or the app
uses an extension the cache cannot replay (trailers, zero-copy send).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ResponseRecorder", "StartAction"]

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


class StartAction:
    """What to do with the app's response start, decided by the responder."""

    __slots__ = ("forward_body", "headers", "record", "status")

    def __init__(
        self,
        *,
        status: int | None,
        headers: list[tuple[bytes, bytes]] | None,
        forward_body: bool,
        record: bool,
    ) -> None:
        # ``status``/``headers`` None: send nothing to the client (the responder answers).
        self.status = status
        self.headers = headers
        self.forward_body = forward_body
        self.record = record


OnStart = Callable[[int, list[tuple[bytes, bytes]]], StartAction]


class ResponseRecorder:
    """One response's send wrapper; afterwards holds status, headers and (maybe) the body."""

    __slots__ = (
        "_body",
        "_clock",
        "_forward_body",
        "_max_body",
        "_on_start",
        "_send",
        "_sent_start",
        "complete",
        "headers",
        "response_time",
        "status",
    )

    def __init__(
        self,
        send: Send | None,
        on_start: OnStart,
        *,
        max_body: int,
        clock: Callable[[], float],
    ) -> None:
        self._send = send
        self._on_start = on_start
        self._max_body = max_body
        self._clock = clock
        self._body: bytearray | None = None
        self._forward_body = False
        self._sent_start = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False
        self.response_time = 0.0

    @property
    def started(self) -> bool:
        """Whether the app began its response (status and headers are known)."""
        return self.status != 0

    @property
    def sent_to_client(self) -> bool:
        """Whether anything went to the client (then nothing else may be sent)."""
        return self._sent_start

    @property
    def body(self) -> bytes | None:
        """The whole body when it was recorded completely, else ``None``."""
        if self._body is None or not self.complete:
            return None
        return bytes(self._body)

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.response_time = self._clock()
            self.status = int(message["status"])
            self.headers = list(message.get("headers", ()))
            action = self._on_start(self.status, self.headers)
            self._forward_body = action.forward_body
            if action.record:
                self._body = bytearray()
            if action.status is not None and self._send is not None:
                self._sent_start = True
                await self._send(
                    {
                        "type": "http.response.start",
                        "status": action.status,
                        "headers": action.headers or [],
                        "trailers": message.get("trailers", False),
                    }
                )
            return
        if kind == "http.response.body":
            chunk: bytes = message.get("body", b"")
            more = bool(message.get("more_body", False))
            recorded = self._body
            if recorded is not None:
                if len(recorded) + len(chunk) > self._max_body:
                    self._body = None  # over the cap: stop storing, keep streaming
                else:
                    recorded += chunk
            if not more:
                self.complete = True
            if self._send is None or not self._sent_start:
                return
            if self._forward_body:
                await self._send(message)
            elif not more:
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        # Trailers, zero-copy file sends and the like cannot be replayed from a stored body.
        self._body = None
        if self._send is not None and self._sent_start and self._forward_body:
            await self._send(message)
