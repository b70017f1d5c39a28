"""One Chromium for the whole test session (a pytest plugin, named in the root
conftest): Playwright's sync API allows one running instance per thread, so
every browser test directory shares this one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser():
    missing = chromium_missing()
    assert missing is None, missing
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"  # never fetch Playwright's own browser
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: while Playwright's sync API is alive it holds an
    event loop in this thread, and an asyncio test after it would fail with
    "Cannot run the event loop while another loop is running"."""
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))
