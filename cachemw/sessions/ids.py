"""Session ids: generation, strict format check, and the Valkey reference derived from them.

An id is 64 base64url characters (48 bytes from :mod:`secrets`). Its first 16 characters are
the *family*: kept across :meth:`Session.rotate`, they choose the Valkey Cluster hash tag, so
the old and the new hash of a rotation share a slot and one script can move the data
atomically. The remaining 48 characters (288 bits) are always fresh, so a rotated id is as
unguessable as a new one (OWASP: >= 64 bits of entropy; ASVS 5.0 §7.2.3 asks for >= 128).

The raw id is never a Valkey key, never stored and never logged: keys and the per-user index
hold a :class:`SessionRef` made of two digests.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from cachemw.valkey import Keyspace, digest

__all__ = [
    "ID_LENGTH",
    "SessionRef",
    "is_well_formed_id",
    "new_session_id",
    "rotated_session_id",
    "session_ref",
]

ID_LENGTH = 64
_FAMILY_LENGTH = 16
_SECRET_BYTES = 36  # 48 base64url characters, 288 bits
_ID_RE = re.compile(rb"[A-Za-z0-9_-]{64}")
_REF_RE = re.compile(r"([0-9a-f]{16}):([0-9a-f]{32})")
SESSION_FEATURE = "sess"


@dataclass(frozen=True, slots=True)
class SessionRef:
    """Where a session lives: the family's hash tag and a digest of the whole id.

    ``handle`` is its string form, safe to show a user (\"your other devices\") and to pass
    back to :meth:`SessionStore.revoke_session`: it is not a credential.
    """

    tag: str
    id_digest: str

    @property
    def handle(self) -> str:
        return f"{self.tag}:{self.id_digest}"

    def key(self, keyspace: Keyspace) -> str:
        # Both parts are hex digests (session_ref, or from_handle's pattern).
        return keyspace.digest_key(SESSION_FEATURE, self.tag, self.id_digest)

    @classmethod
    def from_handle(cls, handle: str | bytes) -> SessionRef | None:
        text = handle.decode("ascii", "replace") if isinstance(handle, bytes) else handle
        match = _REF_RE.fullmatch(text)
        return None if match is None else cls(match[1], match[2])


def new_session_id() -> str:
    """A fresh id: 384 bits from the OS CSPRNG."""
    return secrets.token_urlsafe(48)


def rotated_session_id(old_id: str) -> str:
    """A new id in the same family (same Cluster slot), with a fresh 288-bit secret."""
    return old_id[:_FAMILY_LENGTH] + secrets.token_urlsafe(_SECRET_BYTES)


def is_well_formed_id(value: bytes) -> bool:
    """Strict format check; anything else is treated as no session at all."""
    return _ID_RE.fullmatch(value) is not None


def session_ref(session_id: str) -> SessionRef:
    family = session_id[:_FAMILY_LENGTH]
    return SessionRef(digest(family, size=8), digest(session_id, size=16))
