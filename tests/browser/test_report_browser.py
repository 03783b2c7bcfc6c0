"""The HTML of `fusionrec report` in a real browser: headless Debian chromium through Python Playwright.

Self-contained (no fixture of this folder's conftest): it trains a small demo run, writes its
report, opens the file in chromium with networking switched off, and checks that the page logs
no console error, throws nothing, asks for nothing outside the file, and shows every figure.
It takes a screenshot; with ``FUSIONREC_WRITE_SCREENSHOTS=1`` that is the one the README shows
(docs/images/report.png), otherwise a file in the test's temporary folder, so a test run leaves
the checkout as it was.

Skips with a message when chromium (``apt-get install chromium``) or the ``playwright`` package
is missing. Playwright runs in a worker thread of its own, so a Playwright session another test
of the same pytest process keeps open (its sync API owns an event loop) does not clash.
"""
from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.report.demo_runs import demo_dataset, train_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHROMIUM = Path(os.environ.get("FUSIONREC_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "report.png"


def _chromium() -> str:
    if CHROMIUM.is_file():
        return str(CHROMIUM)
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip(f"no chromium at {CHROMIUM} or on PATH: apt-get install -y chromium (as .ci/run does), or set "
                    "FUSIONREC_CHROMIUM")
    return found


def _open_in_chromium(executable: str, page_path: Path, screenshot: Path) -> dict:
    """Load the report, collect what went wrong, take the screenshot; runs in its own thread."""
    from playwright.sync_api import sync_playwright

    seen: dict = {"console": [], "page_errors": [], "requests": [], "failed": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("console", lambda m: seen["console"].append((m.type, m.text)))
            page.on("pageerror", lambda e: seen["page_errors"].append(str(e)))
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.on("requestfailed", lambda r: seen["failed"].append(r.url))
            page.goto(page_path.as_uri(), wait_until="load")
            # every <img> decoded (naturalWidth 0 = a broken image)
            seen["broken_images"] = page.evaluate(
                "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length")
            seen["n_images"] = page.evaluate("document.images.length")
            seen["sections"] = page.evaluate("Array.from(document.querySelectorAll('section')).map(s => s.id)")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    return seen


def test_report_opens_in_chromium_without_console_errors(tmp_path):
    pytest.importorskip("playwright.sync_api", reason="Python playwright is not installed: pip install -e '.[test]'")
    executable = _chromium()
    from fusionrec.report.build import ReportOptions, build_report

    run = train_run(demo_dataset(tmp_path / "shop"), tmp_path / "runs")
    page_path = build_report([run], tmp_path / "report.html", ReportOptions(n_users=2))
    with ThreadPoolExecutor(1) as pool:
        shot = SCREENSHOT if os.environ.get("FUSIONREC_WRITE_SCREENSHOTS") == "1" else page_path.with_suffix(".png")
        seen = pool.submit(_open_in_chromium, executable, page_path, shot).result(timeout=120)
    errors = [text for kind, text in seen["console"] if kind == "error"]
    assert errors == [] and seen["page_errors"] == [], seen
    assert seen["failed"] == []
    # the only document loaded is the file itself: no CDN, no font, no favicon fetch
    assert [u for u in seen["requests"] if not u.startswith(("file:", "data:"))] == []
    assert seen["broken_images"] == 0 and seen["n_images"] > 10
    assert {"metrics", "curves", "breakdowns", "beyond", "ablation", "embeddings", "users"} <= set(seen["sections"])
    assert shot.stat().st_size > 10_000
