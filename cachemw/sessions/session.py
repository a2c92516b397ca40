"""The per-request :class:`Session`: a lazily loaded, change-tracking mapping.

Nothing is read from Valkey until ``await session.load()`` (the FastAPI dependency and
:func:`cachemw.sessions.load_session` do it); a request that never loads the session costs
no Valkey command and its response is left exactly as the app made it.

Values are encoded with msgspec msgpack *when assigned*: **assignment is the unit of
change**. Mutating a value in place (``session["cart"].append(x)``) is not seen; assign it
again (``session["cart"] = cart``). Only fields assigned or deleted during the request are
written back, so concurrent requests that change different fields both keep their change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from typing import Any, TypeVar, overload

import msgspec

from cachemw.sessions.cookies import CookieCodec
from cachemw.sessions.errors import (
    SessionDataError,
    SessionNotLoaded,
    SessionStoreUnavailable,
    SessionTooLarge,
)
from cachemw.sessions.ids import SessionRef, session_ref
from cachemw.sessions.store import LoadedSession, SessionStore

__all__ = ["Session", "SessionContext"]

T = TypeVar("T")

_MAX_NAME_BYTES = 256
_META = frozenset({b"@c", b"@a", b"@g", b"@b", b"@u"})

UNTOUCHED = 0  # load() never called: the middleware leaves the response alone
LOADING = 1
LOADED = 2
FAILED = 3  # the store was unavailable: every use raises, nothing is written
DONE = 4  # the response started: the session was committed and is read-only
# Not loaded when the response started (or the websocket was accepted): a later load (a
# background task, a websocket handler) reads, but nothing could save a change: read-only.
LATE = 5


class _Keep:
    __slots__ = ()


_KEEP: Any = _Keep()


class SessionContext:
    """What every session of one middleware shares: store, cookie codec, typed decoders."""

    __slots__ = ("_decoders", "codec", "config", "store")

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.config = store.config
        self.codec = CookieCodec(store.config)
        self._decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}

    def decoder(self, type_: Any) -> msgspec.msgpack.Decoder[Any]:
        decoder = self._decoders.get(type_)
        if decoder is None:
            # Bounded by the number of distinct types the app's code asks for.
            decoder = self._decoders[type_] = msgspec.msgpack.Decoder(type_)
        return decoder


def field_name(name: str) -> bytes:
    if not isinstance(name, str) or not name or name.startswith("@"):
        raise KeyError(f"session field names are non-empty str not starting with '@': {name!r}")
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) > _MAX_NAME_BYTES:
        raise KeyError(f"session field names are at most {_MAX_NAME_BYTES} bytes")
    return raw


class Session(MutableMapping[str, Any]):
    """One request's view of its session. See the module docstring for the change rules.

    Apps use the mapping API, :meth:`get`, the read-only properties and :meth:`rotate` /
    :meth:`destroy`. The underscored state is shared with :mod:`cachemw.sessions.commit`
    and the middleware (same package); the raw id is never exposed.
    """

    __slots__ = (
        "_absolute_at_ms",
        "_context",
        "_cookie_present",
        "_created_at_ms",
        "_decoded",
        "_deleted",
        "_destroyed",
        "_expires_at_ms",
        "_generation",
        "_headers",
        "_is_corrupt",
        "_loaded_user_id",
        "_loading",
        "_raw",
        "_ref",
        "_rotate_requested",
        "_session_id",
        "_set_fields",
        "_size",
        "_state",
        "_user_action",
        "_user_id_value",
    )

    def __init__(self, context: SessionContext, headers: list[tuple[bytes, bytes]]) -> None:
        # Only what an untouched request needs; the rest is set by load().
        self._context = context
        self._headers = headers
        self._state = UNTOUCHED
        self._loading: asyncio.Future[None] | None = None

    # -- loading --------------------------------------------------------------------------

    async def load(self) -> Session:
        """Read the session from Valkey once (one EVALSHA); later calls return at once.

        Raises :class:`SessionStoreUnavailable` when Valkey cannot answer (the middleware
        turns it into a 503). Unknown, expired, forged, malformed, duplicated or corrupt
        session cookies all give an empty, new session: a client-chosen id is never adopted.
        """
        state = self._state
        if state in (LOADED, DONE):
            return self
        if state == LOADING:
            # A second concurrent load waits for the first (created only when it happens).
            if self._loading is None:
                self._loading = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._loading)
            return self.load_result()
        if state == FAILED:
            raise SessionStoreUnavailable("the session store is unavailable")
        self._state = LOADING
        self._reset()
        try:
            await self._read()
        except BaseException:
            self._state = FAILED
            raise
        else:
            self._state = DONE if state == LATE else LOADED
        finally:
            if self._loading is not None:
                self._loading.set_result(None)
        return self

    def load_result(self) -> Session:
        """Self once loaded; raises if the load that was awaited failed."""
        if self._state == FAILED:
            raise SessionStoreUnavailable("the session store is unavailable")
        return self

    def _reset(self) -> None:
        self._cookie_present = False
        self._session_id: str | None = None  # set only for a session that exists in Valkey
        self._ref: SessionRef | None = None
        self._is_corrupt = False
        self._generation = 0
        self._created_at_ms = 0
        self._absolute_at_ms = 0
        self._expires_at_ms = 0
        self._user_id_value: str | None = None
        self._loaded_user_id: str | None = None
        self._raw: dict[bytes, bytes] = {}
        self._decoded: dict[bytes, Any] = {}
        self._set_fields: dict[bytes, bytes] = {}
        self._deleted: set[bytes] = set()
        self._size = 0
        self._rotate_requested = False
        self._destroyed = False
        self._user_action = ""

    async def _read(self) -> None:
        context = self._context
        cookie = context.codec.read(self._headers)
        self._cookie_present = cookie.present
        if cookie.session_id is None:
            return
        ref = session_ref(cookie.session_id)
        loaded = await context.store.load(ref)
        if loaded is None:
            return
        if not self._adopt(loaded):
            self._is_corrupt = True
            self._ref = ref  # the commit deletes the corrupt hash; the request is anonymous
            self._raw.clear()
            self._decoded.clear()
            self._size = 0
            self._user_id_value = None
            context.store.report_event(
                "corrupt_session", "a session hash did not decode; treated as none"
            )
            return
        self._session_id = cookie.session_id
        self._ref = ref
        self._loaded_user_id = self._user_id_value

    def _adopt(self, loaded: LoadedSession) -> bool:
        fields = loaded.fields
        try:
            self._generation = int(fields[b"@g"])
            self._created_at_ms = int(fields[b"@c"])
            self._absolute_at_ms = int(fields[b"@a"])
            user = fields.get(b"@u")
            self._user_id_value = None if user is None else user.decode("utf-8")
        except (KeyError, ValueError):
            return False
        self._expires_at_ms = loaded.expires_at_ms
        raw = self._raw
        decoded = self._decoded
        size = 0
        try:
            for name, value in fields.items():
                if name in _META:
                    continue
                decoded[name] = msgspec.msgpack.decode(value)
                raw[name] = value
                size += len(name) + len(value)
        except msgspec.DecodeError:
            return False
        self._size = size
        return True

    # -- state ----------------------------------------------------------------------------

    @property
    def is_loaded(self) -> bool:
        return self._state in (LOADED, DONE)

    @property
    def is_new(self) -> bool:
        """True until the session exists in Valkey (it is created when first written)."""
        self._check_readable()
        return self._session_id is None

    @property
    def user_id(self) -> str | None:
        """The user this session is bound to (by ``rotate(user_id=...)``), if any."""
        self._check_readable()
        return self._user_id_value

    @property
    def handle(self) -> str | None:
        """This session's handle in :meth:`SessionStore.list_user_sessions`, once it exists."""
        self._check_readable()
        return None if self._session_id is None or self._ref is None else self._ref.handle

    @property
    def created_at(self) -> float | None:
        self._check_readable()
        return None if self._session_id is None else self._created_at_ms / 1000

    @property
    def expires_at(self) -> float | None:
        """When the session ends if left idle (epoch seconds), capped by its absolute end."""
        self._check_readable()
        return None if self._session_id is None else self._expires_at_ms / 1000

    @property
    def absolute_expires_at(self) -> float | None:
        self._check_readable()
        return None if self._session_id is None else self._absolute_at_ms / 1000

    def _check_readable(self) -> None:
        state = self._state
        if state in (LOADED, DONE):
            return
        if state == FAILED:
            raise SessionStoreUnavailable("the session store is unavailable")
        raise SessionNotLoaded(
            "the session is not loaded: use the FastAPI dependency or "
            "`await load_session(request)` first"
        )

    def _check_writable(self) -> None:
        self._check_readable()
        if self._state == DONE:
            raise SessionNotLoaded(
                "the response has started (or the websocket was accepted): "
                "the session can no longer change"
            )
        if self._destroyed:
            raise SessionNotLoaded("the session was destroyed in this request")

    # -- mapping --------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        self._check_readable()
        try:
            return self._decoded[field_name(name)]
        except KeyError:
            raise KeyError(name) from None

    @overload
    def get(self, name: str, /) -> Any: ...
    @overload
    def get(self, name: str, /, default: Any) -> Any: ...
    @overload
    def get(self, name: str, /, default: T | None = None, *, type: type[T]) -> T | None: ...

    def get(self, name: str, /, default: Any = None, *, type: Any = None) -> Any:
        """The value of ``name`` or ``default``. With ``type=``, the stored msgpack is decoded
        and validated as that type by msgspec (:class:`SessionDataError` on a mismatch)."""
        self._check_readable()
        raw_name = field_name(name)
        if type is None:
            return self._decoded.get(raw_name, default)
        raw = self._raw.get(raw_name)
        if raw is None:
            return default
        try:
            return self._context.decoder(type).decode(raw)
        except msgspec.ValidationError as exc:
            raise SessionDataError(f"session field {name!r} is not a {type!r}: {exc}") from None

    def __setitem__(self, name: str, value: Any) -> None:
        self._check_writable()
        raw_name = field_name(name)
        encoded = msgspec.msgpack.encode(value)
        config = self._context.config
        if len(encoded) > config.max_value_bytes:
            raise SessionTooLarge(
                f"session field {name!r} is {len(encoded)} bytes encoded; "
                f"max_value_bytes is {config.max_value_bytes}"
            )
        old = self._raw.get(raw_name)
        size = self._size + len(raw_name) + len(encoded)
        if old is not None:
            size -= len(raw_name) + len(old)
        if size > config.max_session_bytes:
            raise SessionTooLarge(
                f"the session would be {size} bytes; max_session_bytes is "
                f"{config.max_session_bytes}"
            )
        self._size = size
        self._raw[raw_name] = encoded
        self._decoded[raw_name] = value
        self._set_fields[raw_name] = encoded
        self._deleted.discard(raw_name)

    def __delitem__(self, name: str) -> None:
        self._check_writable()
        raw_name = field_name(name)
        old = self._raw.pop(raw_name, None)
        if old is None:
            raise KeyError(name)
        del self._decoded[raw_name]
        self._size -= len(raw_name) + len(old)
        self._set_fields.pop(raw_name, None)
        self._deleted.add(raw_name)

    def __iter__(self) -> Iterator[str]:
        self._check_readable()
        return iter([name.decode("utf-8", "surrogatepass") for name in self._decoded])

    def __len__(self) -> int:
        self._check_readable()
        return len(self._decoded)

    def __contains__(self, name: object) -> bool:
        self._check_readable()
        return isinstance(name, str) and name.encode("utf-8", "surrogatepass") in self._decoded

    def __repr__(self) -> str:  # never shows the id
        fields = len(self._decoded) if self.is_loaded else "?"
        return f"<Session state={self._state} fields={fields}>"

    # -- lifecycle ------------------------------------------------------------------------

    def rotate(self, *, user_id: str | None = _KEEP) -> None:
        """Give the session a new id when the response is sent, keeping its data; the old
        hash goes in the same atomic step. Call it on login and on any privilege change
        (OWASP). ``user_id=`` binds the session to a user (``None`` unbinds) and records it
        in the user's index for :meth:`SessionStore.revoke_user_sessions`. The absolute
        lifetime keeps counting from the session's creation (``destroy()`` and start a new
        session for a fresh one).
        """
        self._check_writable()
        self._rotate_requested = True
        if user_id is _KEEP:
            return
        if user_id is not None and (not isinstance(user_id, str) or not user_id):
            raise TypeError("user_id must be a non-empty str or None")
        if user_id != self._user_id_value:
            self._user_action = "unset" if user_id is None else "set"
            self._user_id_value = user_id

    def destroy(self) -> None:
        """Log out: delete the session server-side and clear the cookie when the response
        is sent (``Cache-Control: no-store``, and ``Clear-Site-Data`` if configured)."""
        self._check_readable()
        if self._state == DONE:
            raise SessionNotLoaded(
                "the response has started (or the websocket was accepted): "
                "the session can no longer change"
            )
        self._destroyed = True
        self._raw.clear()
        self._decoded.clear()
        self._set_fields.clear()
        self._deleted.clear()
