"""Debian's Chromium driven by Playwright, for the console's browser tests and screenshots.

Playwright never downloads a browser here: it launches `/usr/bin/chromium` (Debian package,
installed by `make service-deps`) headless, with the network features that phone home off.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> Path | None:
    """Debian's Chromium, else one on PATH; None when there is none."""
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


@contextmanager
def chromium() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        raise RuntimeError("No chromium (make service-deps installs Debian's)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(path), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
