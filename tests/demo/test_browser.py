"""End to end in headless Chromium: the dashboard shows MISS then HIT, login and the cart.

Uses Debian's ``chromium`` through Playwright's ``executable_path`` (never a browser
download: ``demo_app/ensure_chromium.sh`` installs the system package). Without Chromium or
Playwright the test is skipped with the reason, except in CI (``CI=true``), where it fails.
The screenshot is saved to ``tests/artifacts/dashboard.png``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from tests.demo.server import REPO, DemoServer

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("CACHEMW_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = REPO / "tests" / "artifacts" / "dashboard.png"
TIMEOUT_MS = 15_000


def _require_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (run demo_app/ensure_chromium.sh)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install playwright)")
    if not missing:
        return
    reason = "browser test needs " + " and ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + "; CI must install them")
    pytest.skip(reason)


def test_dashboard_shows_miss_then_hit_login_cart_429_and_a_stampede(
    demo_server: DemoServer,
) -> None:
    _require_browser()
    from playwright.sync_api import expect, sync_playwright  # noqa: PLC0415

    expect.set_options(timeout=TIMEOUT_MS)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{demo_server.url}/")
            expect(page).to_have_title("cachemw demo shop")

            page.select_option("#product-id", "3")
            page.click("#fetch-twice")
            fetches = page.locator("#fetch-log li")
            expect(fetches).to_have_count(2)
            expect(fetches.nth(0)).to_have_attribute("data-outcome", "MISS")
            expect(fetches.nth(1)).to_have_attribute("data-outcome", "HIT")

            # Updating the product invalidates its tag: the next fetch is a MISS again.
            page.fill("#new-price", "12.34")
            page.click("#update-product")
            expect(page.locator("#update-result")).to_contain_text("If-Match")
            expect(page.locator("#update-result")).to_contain_text("200")
            page.click("#fetch-twice")
            expect(fetches.nth(0)).to_have_attribute("data-outcome", "MISS")
            expect(fetches.nth(0)).to_contain_text("12.34")
            expect(fetches.nth(1)).to_have_attribute("data-outcome", "HIT")

            page.fill("#username", "carol")
            page.click("#login")
            expect(page.locator("#me-user")).to_have_text("carol")

            page.fill("#sku", "kettle")
            page.fill("#qty", "2")
            page.click("#add-to-cart")
            expect(page.locator('#cart li[data-sku="kettle"]')).to_have_text("kettle \u00d7 2")

            page.click("#hammer-search")
            expect(page.locator("#search-log li.limited")).to_have_count(1)
            expect(page.locator("#search-log li")).to_have_count(11)

            # The live numbers refresh by themselves. Hits: the second fetch of each pair and
            # the update's GET of the ETag; misses: the first fetch of each pair.
            expect(page.locator("#stat-hit-ratio")).to_have_text("60%")
            expect(page.locator("#stat-sessions")).to_have_text("1")
            expect(page.locator("#stat-limited")).to_have_text("1")

            # Twenty fetches at once of a cold product: the app runs once; the others wait
            # for its entry or, arriving later, hit it.
            page.select_option("#product-id", "5")
            page.click("#stampede")
            expect(page.locator("#stampede-result")).to_contain_text("1 \u00d7 MISS")
            expect(page.locator("#stampede-result")).not_to_contain_text("BYPASS")

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert errors == []
        finally:
            browser.close()


def test_browser_test_is_skipped_with_its_reason_when_chromium_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"ensure_chromium\.sh"):
        _require_browser()


def test_browser_test_fails_in_ci_when_chromium_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install"):
        _require_browser()
