"""Classifying http-cache-tests results the way cache-tests.fyi does, and the Markdown report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.conformance.reasons import FAILURE_REASONS


@dataclass
class SuiteCounts:
    name: str
    passed: int = 0
    failed: int = 0
    optional_failed: int = 0
    setup_failed: int = 0
    dependency_failed: int = 0


@dataclass
class Summary:
    suites: list[SuiteCounts] = field(default_factory=list)
    failures: list[tuple[str, str, str, str]] = field(default_factory=list)  # suite, id, name, why

    @property
    def passed(self) -> int:
        return sum(s.passed for s in self.suites)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.suites)


def classify(test: dict[str, Any], results: dict[str, Any], by_id: dict[str, Any]) -> str:
    """``lib/display.mjs`` determineTestResult: pass, fail, optional_fail, yes, no, setup_fail,
    harness_fail, dependency_fail, untested."""
    result = results.get(test["id"])
    if result is None:
        return "untested"
    for dependency in test["depends_on"]:
        if dependency in by_id and classify(by_id[dependency], results, by_id) not in (
            "pass",
            "yes",
        ):
            return "dependency_fail"
    if isinstance(result, list) and result and result[0] == "Setup":
        return "setup_fail"
    if result is False:
        return "harness_fail"
    kind = test["kind"]
    if kind == "optimal":
        return "pass" if result is True else "optional_fail"
    if kind == "check":
        return "yes" if result is True else "no"
    return "pass" if result is True else "fail"


def summarise(tests: list[dict[str, Any]], results: dict[str, Any]) -> Summary:
    by_id = {test["id"]: test for test in tests}
    summary = Summary()
    suites: dict[str, SuiteCounts] = {}
    for test in tests:
        outcome = classify(test, results, by_id)
        counts = suites.setdefault(test["suite"], SuiteCounts(test["suite"]))
        if outcome == "pass" and test["kind"] == "required":
            counts.passed += 1
        elif outcome == "fail":
            counts.failed += 1
            result = results.get(test["id"])
            detail = result[1] if isinstance(result, list) and len(result) > 1 else str(result)
            why = FAILURE_REASONS.get(test["id"], f"not yet analysed: {detail}")
            summary.failures.append((test["suite"], test["id"], test["name"], why))
        elif outcome == "optional_fail":
            counts.optional_failed += 1
        elif outcome == "setup_fail":
            counts.setup_failed += 1
        elif outcome == "dependency_fail":
            counts.dependency_failed += 1
    summary.suites = list(suites.values())
    return summary


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_report(summary: Summary, version: str) -> str:
    lines = [
        "# HTTP cache conformance",
        "",
        "Written by `python -m bench.conformance` (`make conformance`); regenerate, don't edit.",
        f"Suite: npm `http-cache-tests@{version}` (cache-tests.fyi), run on loopback against a",
        "reverse proxy (uvicorn h11, `--no-date-header`) wrapped in `CacheMiddleware` with",
        "default settings, on an embedded Valkey.",
        "",
        f"**Required tests: {summary.passed} passed, {summary.failed} failed.**",
        "",
        "Published results of the same suite (required passed/failed): Apache httpd 131/12,",
        "Traffic Server 132/19, Squid 122/17, Caddy 121/10, Varnish 119/17, nginx 99/33,",
        "hishel 111/19.",
        "",
        "| suite | required passed | required failed | optional failed | setup failed |"
        " dependency failed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for suite in summary.suites:
        lines.append(
            f"| {_cell(suite.name)} | {suite.passed} | {suite.failed} | {suite.optional_failed}"
            f" | {suite.setup_failed} | {suite.dependency_failed} |"
        )
    lines += ["", "## Required failures", ""]
    if not summary.failures:
        lines.append("None.")
    else:
        lines += ["| suite | test | why |", "|---|---|---|"]
        for suite_name, test_id, name, why in summary.failures:
            lines.append(f"| {_cell(suite_name)} | `{test_id}`: {_cell(name)} | {_cell(why)} |")
    return "\n".join(lines) + "\n"
