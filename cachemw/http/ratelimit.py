"""Rate-limit rules, window arithmetic and the IETF RateLimit fields, sans I/O.

* Rule syntax: ``"100/minute"``, ``"10/10s;1000/day"``, ``"5 per second"``. One rule may hold
  several windows; a request is admitted only when every window admits it.
* Header fields follow draft-ietf-httpapi-ratelimit-headers-10: ``RateLimit-Policy`` and
  ``RateLimit`` are Structured Field Lists (RFC 9651 §3.1) of Items whose value is the policy
  name as an sf-string, with ``q``/``w`` (policy) and ``r``/``t`` (current state) Integer
  parameters.
* 429/503 bodies are RFC 9457 problem details, with the problem types the draft registers
  (``quota-exceeded`` with ``violated-policies``, ``temporary-reduced-capacity``).

Times arrive from the Valkey server's clock as microseconds; nothing here reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import msgspec

__all__ = [
    "ALGORITHMS",
    "QUOTA_EXCEEDED_TYPE",
    "REDUCED_CAPACITY_TYPE",
    "Decision",
    "KeyFunction",
    "Rule",
    "Window",
    "WindowStatus",
    "decision_from_reply",
    "format_legacy_headers",
    "format_ratelimit",
    "format_ratelimit_policy",
    "format_rule_ratelimit",
    "parse_windows",
    "quota_exceeded_body",
    "reduced_capacity_body",
    "retry_after_seconds",
    "seconds_until",
]

Algorithm = Literal["sliding_log", "sliding_counter", "gcra"]
ALGORITHMS: tuple[Algorithm, ...] = ("sliding_log", "sliding_counter", "gcra")
OnError = Literal["open", "closed"]

# Maps an ASGI scope to the identity a rule counts against; None: the rule does not apply.
KeyFunction = Callable[[Mapping[str, Any]], "str | None"]

QUOTA_EXCEEDED_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded"
REDUCED_CAPACITY_TYPE = "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"

MAX_LIMIT = 1_000_000_000
MAX_WINDOW_SECONDS = 366 * 86400
_MICROS = 1_000_000

_UNIT_SECONDS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip
_WINDOW_RE = re.compile(
    r"\s*(?P<limit>[0-9]{1,10})\s*(?:/|\s+per\s+)\s*(?P<count>[0-9]{1,8})?\s*(?P<unit>[a-z]+)\s*",
    re.IGNORECASE,
)
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_METHOD_RE = re.compile(r"[A-Z]{1,20}")
_PARAM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PLAIN_SF_STRING_RE = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII without '"' and '\'


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``limit`` units of quota in any ``seconds``-long interval."""

    limit: int
    seconds: int

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"window limit must be 1..{MAX_LIMIT}, got {self.limit!r}")
        if not 1 <= self.seconds <= MAX_WINDOW_SECONDS:
            raise ValueError(
                f"window length must be 1..{MAX_WINDOW_SECONDS} seconds, got {self.seconds!r}"
            )

    @property
    def micros(self) -> int:
        return self.seconds * _MICROS


def parse_windows(text: str) -> tuple[Window, ...]:
    """``"10/10s;1000/day"`` -> windows sorted shortest first; ValueError names the bad part."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"rate limit must be text like '100/minute', got {text!r}")
    windows: list[Window] = []
    for part in re.split(r"[;,]", text):
        match = _WINDOW_RE.fullmatch(part)
        unit = _UNIT_SECONDS.get(match["unit"].lower()) if match else None
        if match is None or unit is None:
            raise ValueError(
                f"rate limit {text!r}: {part.strip()!r} is not <count>/<period> "
                "(e.g. '100/minute', '10/10s', '1000 per day'; units s, m, h, d)"
            )
        try:
            window = Window(int(match["limit"]), int(match["count"] or 1) * unit)
        except ValueError as exc:
            raise ValueError(f"rate limit {text!r}: {part.strip()!r}: {exc}") from None
        if any(w.seconds == window.seconds for w in windows):
            raise ValueError(f"rate limit {text!r}: two limits for a {window.seconds} s window")
        windows.append(window)
    return tuple(sorted(windows, key=lambda w: w.seconds))


def _names(setting: str, values: Sequence[str], pattern: re.Pattern[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValueError(f"{setting} must be a sequence of strings, not one string {values!r}")
    for value in values:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"{setting}: {value!r} does not match {pattern.pattern}")
    return tuple(values)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One named rate limit: how much (``limit``), where, for whom, and what on failure.

    ``Rule(name="login", limit="5/minute;100/day", routes=("/login",), methods=("POST",),
    on_error="closed")``.

    * ``routes`` are route templates (``/users/{id}``): every URL a template matches shares
      one bucket per identity unless the parameter is listed in ``per_params``, whose
      values count in their convertor's text form: type them in the template
      (``/users/{id:int}``) so ``7`` and ``007`` are one bucket.
    * ``path_prefixes`` match by prefix (one bucket per prefix). With neither routes nor
      prefixes the rule matches every path. ``methods`` empty: every method; GET also
      matches HEAD (RFC 9110 §9.3.2: HEAD is GET without content).
    * ``bucket`` names a counter shared by every rule and route that uses the same name.
    * ``identity`` overrides the middleware's key function for this rule.
    * ``on_error``: ``"open"`` admits while Valkey is unavailable, ``"closed"`` answers 503.
    * ``shadow``: decide and count metrics, never reject, send no headers.
    * ``algorithm``: ``"sliding_log"`` is exact (one sorted-set member per unit in the
      window, so keep it to limits up to some thousands); ``"sliding_counter"`` is O(1)
      and approximate (assumes the previous window's requests were evenly spread; never
      more than 2x the limit in any window); ``"gcra"`` is O(1) and exact for a smooth rate
      of ``limit`` per window with bursts of up to ``limit``.
    """

    name: str
    limit: str
    routes: tuple[str, ...] = ()
    path_prefixes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    per_params: tuple[str, ...] = ()
    bucket: str | None = None
    algorithm: Algorithm = "sliding_log"
    cost: int = 1
    on_error: OnError = "open"
    shadow: bool = False
    identity: KeyFunction | None = None
    windows: tuple[Window, ...] = field(init=False)
    policy_names: tuple[str, ...] = field(init=False)
    policy_header: bytes = field(init=False)  # RateLimit-Policy, rendered once
    quoted_policy_names: tuple[str, ...] = field(init=False)  # as sf-strings

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise ValueError(f"rule name {self.name!r} must match {_NAME_RE.pattern}")
        windows = parse_windows(self.limit)
        object.__setattr__(self, "windows", windows)
        for setting in ("routes", "path_prefixes"):
            paths = getattr(self, setting)
            if isinstance(paths, str):
                raise ValueError(f"rule {self.name!r}: {setting} must be a sequence of paths")
            for path in paths:
                if not isinstance(path, str) or not path.startswith("/"):
                    raise ValueError(f"rule {self.name!r}: {setting} entry {path!r} must start '/'")
            object.__setattr__(self, setting, tuple(paths))
        methods = _names(f"rule {self.name!r}: methods", self.methods, _METHOD_RE)
        if "GET" in methods and "HEAD" not in methods:
            methods = (*methods, "HEAD")
        object.__setattr__(self, "methods", methods)
        per_params = _names(f"rule {self.name!r}: per_params", self.per_params, _PARAM_RE)
        object.__setattr__(self, "per_params", per_params)
        if self.bucket is not None and not _NAME_RE.fullmatch(self.bucket):
            raise ValueError(f"rule {self.name!r}: bucket {self.bucket!r} must match {_NAME_RE}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"rule {self.name!r}: algorithm {self.algorithm!r} not in {ALGORITHMS}"
            )
        smallest = min(w.limit for w in windows)
        if isinstance(self.cost, bool) or not isinstance(self.cost, int):
            raise ValueError(f"rule {self.name!r}: cost must be an int, got {self.cost!r}")
        if not 1 <= self.cost <= smallest:
            raise ValueError(
                f"rule {self.name!r}: cost must be 1..{smallest} (the smallest limit), "
                f"got {self.cost!r}"
            )
        if self.on_error not in ("open", "closed"):
            raise ValueError(f"rule {self.name!r}: on_error must be 'open' or 'closed'")
        if self.identity is not None and not callable(self.identity):
            raise ValueError(f"rule {self.name!r}: identity must be callable")
        if len(windows) == 1:
            names: tuple[str, ...] = (self.name,)
        else:
            names = tuple(f"{self.name}-{w.seconds}s" for w in windows)
        object.__setattr__(self, "policy_names", names)
        object.__setattr__(self, "policy_header", format_ratelimit_policy(self))
        object.__setattr__(self, "quoted_policy_names", tuple(_sf_string(n) for n in names))


# WindowStatus and Decision are built for every request on the hot path: immutable
# NamedTuples, which construct several times faster than frozen dataclasses.
class WindowStatus(NamedTuple):
    """The state of one window after a decision: units left and microseconds until more."""

    policy: str
    window: Window
    remaining: int
    reset_micros: int
    violated: bool


class Decision(NamedTuple):
    admitted: bool
    statuses: tuple[WindowStatus, ...]

    @property
    def violated(self) -> tuple[WindowStatus, ...]:
        return tuple(s for s in self.statuses if s.violated)


def decision_from_reply(rule: Rule, reply: Sequence[int]) -> Decision:
    """Read a ratelimit_* script reply: ``[admitted, (used, reset_us, violated) * n]``."""
    statuses = []
    i = 1
    for window, policy in zip(rule.windows, rule.policy_names, strict=True):
        remaining = window.limit - int(reply[i])
        reset = int(reply[i + 1])
        statuses.append(
            WindowStatus(
                policy,
                window,
                remaining if remaining > 0 else 0,
                reset if reset > 0 else 0,
                reply[i + 2] == 1,
            )
        )
        i += 3
    return Decision(reply[0] == 1, tuple(statuses))


def seconds_until(micros: int) -> int:
    """Whole seconds, rounded up, so a client that waits this long is not early."""
    return -(-micros // _MICROS)


def retry_after_seconds(decision: Decision) -> int:
    """RFC 9110 §10.2.3 delay-seconds for a 429: at least 1 and never before any ``t``."""
    violated = decision.violated or decision.statuses
    return max(1, *(seconds_until(s.reset_micros) for s in violated))


# -- Structured Field serialisation (RFC 9651 §4.1) -------------------------------------


def _sf_string(value: str) -> str:
    # RFC 9651 §4.1.6: printable ASCII only, with '"' and '\' escaped.
    if _PLAIN_SF_STRING_RE.fullmatch(value):
        return '"' + value + '"'  # the common case (rule names): nothing to escape
    if any(not 0x20 <= ord(ch) <= 0x7E for ch in value):
        raise ValueError(f"policy name {value!r} must be printable ASCII")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_ratelimit_policy(rule: Rule) -> bytes:
    """``RateLimit-Policy`` members for a rule (draft-10 §3): ``"name";q=100;w=60``.

    The draft's default quota unit is the request and it has no cost parameter, so a rule
    whose requests cost several units states its quota in its requests (``limit // cost``).
    """
    items = [
        f"{_sf_string(name)};q={w.limit // rule.cost};w={w.seconds}"
        for name, w in zip(rule.policy_names, rule.windows, strict=True)
    ]
    return ", ".join(items).encode("ascii")


def format_ratelimit(statuses: Sequence[WindowStatus], *, cost: int = 1) -> bytes:
    """``RateLimit`` members (draft-10 §4): ``"name";r=42;t=17`` (t in whole seconds)."""
    return ", ".join(
        f"{_sf_string(s.policy)};r={s.remaining // cost};t={seconds_until(s.reset_micros)}"
        for s in statuses
    ).encode("ascii")


def format_rule_ratelimit(rule: Rule, decision: Decision) -> bytes:
    """:func:`format_ratelimit` for a decision on ``rule`` (its names quoted once, ahead)."""
    cost = rule.cost
    items = [
        f"{quoted};r={s.remaining // cost};t={-(-s.reset_micros // _MICROS)}"
        for quoted, s in zip(rule.quoted_policy_names, decision.statuses, strict=True)
    ]
    return (items[0] if len(items) == 1 else ", ".join(items)).encode("ascii")


def format_legacy_headers(
    statuses: Sequence[WindowStatus], *, cost: int = 1
) -> list[tuple[bytes, bytes]]:
    """``X-RateLimit-Limit/Remaining/Reset`` for the tightest window (pre-IETF convention)."""
    tightest = min(statuses, key=lambda s: (s.remaining, -s.reset_micros))
    return [
        (b"x-ratelimit-limit", str(tightest.window.limit // cost).encode()),
        (b"x-ratelimit-remaining", str(tightest.remaining // cost).encode()),
        (b"x-ratelimit-reset", str(seconds_until(tightest.reset_micros)).encode()),
    ]


# -- problem details (RFC 9457) -----------------------------------------------------------


def quota_exceeded_body(policies: Sequence[str]) -> bytes:
    """The 429 body (draft-10 §7.1 problem type ``quota-exceeded``)."""
    return msgspec.json.encode(
        {
            "type": QUOTA_EXCEEDED_TYPE,
            "title": "Request cannot be satisfied as assigned quota has been exceeded",
            "status": 429,
            "violated-policies": list(policies),
        }
    )


def reduced_capacity_body() -> bytes:
    """The 503 body when a fail-closed limit cannot be checked (draft-10 §7.2)."""
    return msgspec.json.encode(
        {
            "type": REDUCED_CAPACITY_TYPE,
            "title": "Temporary reduced capacity",
            "status": 503,
            "detail": "The rate limit for this request cannot be checked right now.",
        }
    )
