"""The path a request is routed by, shared by every feature's path rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["route_path"]


def route_path(scope: Mapping[str, Any]) -> str:
    """The path the app's router matches: ``path`` less the ``root_path`` it is mounted at.

    Servers and Starlette put the mount prefix in both (``--root-path /api`` gives
    ``path="/api/static/a.css"``), while routes and path rules are written in the app's own
    terms (``/static/*``).
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    if path[len(root_path)] == "/":
        return path[len(root_path) :]
    return path  # "/apix" under root_path "/api" is not below it
