"""Key naming: every key cachemw writes is ``{prefix}:{feature}:{tag}:{part}...``.

The ``{tag}`` is a Valkey Cluster hash tag chosen by cachemw from a digest, never from raw
request data, so that keys one atomic operation touches share a slot (no CROSSSLOT) and no
client can steer its keys to one node or inject braces, wildcards or newlines into a key.
"""

from __future__ import annotations

import hashlib
import re

_PREFIX_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_PART_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
_TAG_RE = re.compile(r"[0-9a-f]{4,64}")


def digest(data: bytes | str, *, size: int = 16) -> str:
    """A stable hex digest (same in every process and after restarts, unlike ``hash()``)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return hashlib.blake2b(raw, digest_size=size).hexdigest()


class Keyspace:
    """Builds bounded, tag-safe keys under one configurable prefix."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = "cachemw") -> None:
        if not _PREFIX_RE.fullmatch(prefix):
            raise ValueError(
                f"key_prefix {prefix!r} must be 1-64 characters of letters, digits, '_', '.', '-'"
            )
        self.prefix = prefix

    def key(self, feature: str, tag: str, *parts: str) -> str:
        """A key in ``feature`` whose slot is chosen by ``tag`` (a hex digest).

        Parts must be cachemw-made tokens (digests, names); hostile data goes through
        :func:`digest` or :meth:`key_for` first.
        """
        if not _PART_RE.fullmatch(feature):
            raise ValueError(f"feature name {feature!r} is not a safe key part")
        if not _TAG_RE.fullmatch(tag):
            raise ValueError(f"hash tag {tag!r} must be a lower-case hex digest")
        for part in parts:
            if not _PART_RE.fullmatch(part):
                raise ValueError(f"key part {part!r} is not a safe key part")
        return self.digest_key(feature, tag, *parts)

    def digest_key(self, feature: str, tag: str, *parts: str) -> str:
        """:meth:`key` without its checks, for per-request paths whose ``feature`` is a
        constant and whose tag and parts are cachemw's own hex digests (never client data)."""
        suffix = ":" + ":".join(parts) if parts else ""
        return f"{self.prefix}:{feature}:{{{tag}}}{suffix}"

    def key_for(self, feature: str, identity: bytes | str, *parts: str) -> str:
        """A key for arbitrary (possibly hostile) ``identity``: digested, length-bounded."""
        return self.key(feature, digest(identity), *parts)

    def pattern(self, feature: str) -> str:
        """A SCAN MATCH pattern for every key of ``feature`` (never used with KEYS)."""
        return f"{self.prefix}:{feature}:*"
