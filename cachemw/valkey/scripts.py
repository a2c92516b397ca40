"""Lua scripts: one file per atomic operation under ``cachemw/valkey/scripts/``.

A :class:`Script` is cheap to declare at module level: its source is read lazily from the
package on first use (no I/O at import time). The client runs it with EVALSHA and falls back
to EVAL (which also caches it on that node) after ``SCRIPT FLUSH``, a restart or a failover,
so scripts work on every Cluster node without loading them everywhere up front.
"""

from __future__ import annotations

import hashlib
from importlib import resources


class Script:
    """A named Lua script shipped in ``cachemw.valkey.scripts``."""

    __slots__ = ("_sha", "_source", "name")

    def __init__(self, name: str, *, source: str | None = None) -> None:
        self.name = name
        self._source = source
        self._sha: str | None = None

    @property
    def source(self) -> str:
        if self._source is None:
            path = resources.files("cachemw.valkey").joinpath("scripts", f"{self.name}.lua")
            self._source = path.read_text(encoding="utf-8")
        return self._source

    @property
    def sha(self) -> str:
        if self._sha is None:
            # Valkey identifies scripts by the SHA-1 of their body; not a security use.
            self._sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        return self._sha

    def __repr__(self) -> str:
        return f"Script({self.name!r})"
