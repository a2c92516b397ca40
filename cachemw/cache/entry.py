"""The stored form of a cached response: a versioned msgspec Struct, packed as msgpack.

Wire format of one entry value (a hash field in Valkey)::

    b"CM" | format version (1 byte) | flags (1 byte) | [HMAC-SHA256 (32 bytes)] | payload

``payload`` is the msgpack of :class:`CachedResponse`, zlib-compressed when the flags say so.
Anything that does not parse (another version, a bad signature, corrupt bytes) decodes to
``None``: a miss, never an error and never a wrong hit.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib

import msgspec

__all__ = ["ENTRY_FORMAT_VERSION", "CachedResponse", "EntryCodec"]

ENTRY_FORMAT_VERSION = 1
_MAGIC = b"CM"
_FLAG_ZLIB = 0x01
_FLAG_SIGNED = 0x02
_MAC_SIZE = 32
_HEADER_SIZE = 4


class CachedResponse(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One stored response (RFC 9111 §3): what is replayed on a hit.

    ``headers`` is the raw ASGI header list as the app sent it (duplicates kept, hop-by-hop
    fields, Age and tag fields dropped, a Date added if the app sent none). Times are epoch
    seconds of this cache's clock; ``request_time``/``response_time`` feed §4.2.3's age.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    request_time: float
    response_time: float
    tags: tuple[str, ...] = ()
    # The raw Cache-Control, Date and Age values (kept apart from ``headers`` so a hit does
    # not have to scan the list to find them).
    cache_control: bytes = b""
    date: bytes | None = None
    age: bytes | None = None
    expires: bytes | None = None
    etag: bytes | None = None
    last_modified: bytes | None = None
    # The route's default TTL when it opted into one (used only without explicit freshness).
    default_ttl: float | None = None
    # How long the origin took to produce it: XFetch's delta (refresh earlier when slow).
    origin_time: float = 0.0
    # The Vary spec and secondary key it was stored under (RFC 9111 §4.1), so a request that
    # waited for it can check that it selects this variant too.
    vary_spec: bytes = b""
    variant: str = ""


class EntryCodec:
    """Encodes/decodes entries; optionally zlib-compresses bodies and HMAC-signs entries.

    ``compress_min_size``: bodies at least this large are compressed (``None``: never).
    ``signing_key``: when set, entries are signed and unsigned or forged ones are misses,
    so a writer with access to Valkey but not the key cannot inject responses.
    """

    __slots__ = ("_compress_min_size", "_decoder", "_encoder", "_signing_key")

    def __init__(
        self, *, compress_min_size: int | None = None, signing_key: bytes | None = None
    ) -> None:
        if compress_min_size is not None and compress_min_size < 0:
            raise ValueError(f"compress_min_size must be >= 0 or None, got {compress_min_size!r}")
        if signing_key is not None and len(signing_key) < 16:
            raise ValueError("signing_key must be at least 16 bytes")
        self._compress_min_size = compress_min_size
        self._signing_key = signing_key
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(CachedResponse)

    def encode(self, entry: CachedResponse) -> bytes:
        payload = self._encoder.encode(entry)
        flags = 0
        limit = self._compress_min_size
        if limit is not None and len(entry.body) >= limit:
            compressed = zlib.compress(payload, 1)
            if len(compressed) < len(payload):
                payload, flags = compressed, flags | _FLAG_ZLIB
        if self._signing_key is None:
            return b"%b%c%c%b" % (_MAGIC, ENTRY_FORMAT_VERSION, flags, payload)
        flags |= _FLAG_SIGNED
        header = b"%b%c%c" % (_MAGIC, ENTRY_FORMAT_VERSION, flags)
        mac = hmac.new(self._signing_key, header + payload, hashlib.sha256).digest()
        return header + mac + payload

    def decode(self, raw: bytes | None) -> CachedResponse | None:
        """The entry, or ``None`` for anything this version cannot trust (a miss)."""
        if raw is None or len(raw) < _HEADER_SIZE or raw[:2] != _MAGIC:
            return None
        if raw[2] != ENTRY_FORMAT_VERSION:
            return None
        flags = raw[3]
        view = memoryview(raw)
        payload: bytes | memoryview = view[_HEADER_SIZE:]
        if self._signing_key is not None:
            if not flags & _FLAG_SIGNED or len(raw) < _HEADER_SIZE + _MAC_SIZE:
                return None
            mac = raw[_HEADER_SIZE : _HEADER_SIZE + _MAC_SIZE]
            payload = view[_HEADER_SIZE + _MAC_SIZE :]
            expected = hmac.new(
                self._signing_key, raw[:_HEADER_SIZE] + payload, hashlib.sha256
            ).digest()
            if not hmac.compare_digest(mac, expected):
                return None
        elif flags & _FLAG_SIGNED:
            payload = view[_HEADER_SIZE + _MAC_SIZE :]
        try:
            if flags & _FLAG_ZLIB:
                payload = zlib.decompress(payload)
            return self._decoder.decode(payload)
        except (msgspec.DecodeError, zlib.error):
            return None
