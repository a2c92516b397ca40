"""Why each remaining required failure fails (test id -> reason), shown in CONFORMANCE.md."""

from __future__ import annotations

FAILURE_REASONS: dict[str, str] = {
    "age-parse-prefix": (
        "The suite contradicts itself: this test's name says `Age: 0,7200` makes the response "
        "stale, yet it expects a cache hit, while `age-parse-dup-0` (`Age: 0, 0`) and "
        "`age-parse-prefix-twoline` expect a miss. cachemw treats every list-valued or "
        "invalid Age as untrusted (stale on arrival), which satisfies the other 11 Age tests "
        "and never serves a response fresher than it may be."
    ),
}
