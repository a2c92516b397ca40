"""Counters every feature reports into, readable as a snapshot or Prometheus text.

Per process and dependency-free: the demo (or any app) exposes them at ``/metrics``. A
counter is identified by its name and a small, fixed set of label values chosen by cachemw
(never by request data, so the set of series stays bounded).
"""

from __future__ import annotations

from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]


class Metrics:
    """A registry of monotonically increasing counters and callback gauges."""

    __slots__ = ("_counters", "_gauges", "_help")

    def __init__(self) -> None:
        self._counters: dict[tuple[str, Labels], float] = {}
        self._gauges: dict[str, Callable[[], float]] = {}
        self._help: dict[str, str] = {}

    def describe(self, name: str, help_text: str) -> None:
        self._help[name] = help_text

    def incr(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())) if labels else ())
        counters = self._counters
        counters[key] = counters.get(key, 0) + amount

    def gauge(self, name: str, read: Callable[[], float], help_text: str = "") -> None:
        """Register a gauge whose value is read when metrics are collected."""
        self._gauges[name] = read
        if help_text:
            self._help[name] = help_text

    def value(self, name: str, **labels: str) -> float:
        return self._counters.get((name, tuple(sorted(labels.items()))), 0)

    def total(self, name: str) -> float:
        """The sum of a counter over all its label values."""
        return sum(v for (n, _), v in self._counters.items() if n == name)

    def snapshot(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for (name, labels), value in sorted(self._counters.items()):
            suffix = ",".join(f"{k}={v}" for k, v in labels)
            out[f"{name}{{{suffix}}}" if suffix else name] = value
        for name, read in sorted(self._gauges.items()):
            out[name] = read()
        return out

    def render_prometheus(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        seen: set[str] = set()
        for (name, labels), value in sorted(self._counters.items()):
            if name not in seen:
                seen.add(name)
                if name in self._help:
                    lines.append(f"# HELP {name} {self._help[name]}")
                lines.append(f"# TYPE {name} counter")
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")
        for name, read in sorted(self._gauges.items()):
            if name in self._help:
                lines.append(f"# HELP {name} {self._help[name]}")
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {read():g}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
