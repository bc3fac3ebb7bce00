"""Helpers for tests that read pages: dashboard figures, and whether a headless browser can run."""

from __future__ import annotations

import re
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def browser_available() -> bool:
    """True when Playwright and Debian's Chromium are installed."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


def count_of(page: str, key: str) -> int:
    """The figure a dashboard card shows under `key` (e.g. "servers-offline")."""
    match = re.search(rf'class="count-{key}[^"]*" href="[^"]*">(\d+)<', page)
    assert match, f"no count {key} on the page"
    return int(match.group(1))


def href_of(page: str, key: str) -> str:
    """The link behind a dashboard figure."""
    return re.search(rf'class="count-{key}[^"]*" href="([^"]*)"', page).group(1).replace("&amp;", "&")
