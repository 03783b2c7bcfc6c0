"""Headless Debian chromium driven by Python Playwright, for the page tests in this folder.

Playwright's own browser download is not used (CI has no route to it): the tests
drive the system ``chromium`` (``apt-get install chromium``, done by ``.ci/run``).
Every test here skips with a message when chromium or the ``playwright`` package
is missing, so a machine without them still runs the rest of the suite.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("FUSIONREC_CHROMIUM", "/usr/bin/chromium"))
# no sandbox: CI runs as root, where chromium refuses its sandbox; the rest keeps chromium from
# calling home (updates, sync, field trials), so a test also proves the page needs no network
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def _chromium_path() -> Path:
    if CHROMIUM.is_file():
        return CHROMIUM
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip(f"no chromium at {CHROMIUM} or on PATH: install it (`apt-get install -y chromium`, as .ci/run "
                    "does) or set FUSIONREC_CHROMIUM to a chromium binary")
    return Path(found)


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """One headless chromium for the session (a Playwright ``Browser``)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Python playwright is not installed: pip install -e '.[test]'")
    path = _chromium_path()
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(path), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class PageWatch:
    """Console errors, uncaught page errors and requests that left loopback, collected while a page runs."""

    def __init__(self, page, allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> None:
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.failed: list[str] = []
        self.external: list[str] = []
        self._allowed = allowed_hosts
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        page.on("requestfailed", lambda req: self.failed.append(f"{req.method} {req.url}: {req.failure}"))
        page.on("request", self._request)

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.console_errors.append(f"{msg.text} ({msg.location.get('url', '')})")

    def _request(self, req) -> None:
        from urllib.parse import urlparse

        url = urlparse(req.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in self._allowed:
            self.external.append(req.url)

    def problems(self) -> list[str]:
        return ([f"console error: {m}" for m in self.console_errors] + [f"page error: {m}" for m in self.page_errors]
                + [f"failed request: {m}" for m in self.failed] + [f"external request: {m}" for m in self.external])


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh browser context and page (1280x900); closed after the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def watch(page) -> PageWatch:
    """What went wrong on ``page``: console errors, page errors, failed and external requests."""
    return PageWatch(page)
