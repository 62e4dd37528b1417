"""Fixtures of the console's browser tests: Chromium (one per test) and a server whose
console keeps 10,000 calls, on the scripted engine (5 ms between tokens)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.console.browser import chromium, chromium_path
from tests.support.server import ServerProcess, running_server

QUOTA_MODEL = "mistral.mistral-7b-instruct-v0:2"
"""The model of the console server's one quota (1 request per minute)."""


@pytest.fixture
def browser() -> Iterator[Browser]:
    """One per test: Playwright's sync API runs an event loop of its own while it is open,
    which the suite's asyncio tests (run in between, in random order) must not find running."""
    if chromium_path() is None:
        pytest.fail("chromium is not installed (make service-deps)")
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("console")
    config: Path = folder / "outcrop.toml"
    # Guardrails made by the tests persist in a folder of their own, removed afterwards. One
    # quota, on a model only the quota counters' test calls.
    config.write_text(
        f"[console]\nmax_calls = 10000\n[guardrails]\nstate_dir = {str(folder / 'state')!r}\n"
        f"[[quotas]]\nmodel = {QUOTA_MODEL!r}\nrequests_per_minute = 1\n"
    )
    with running_server(
        ["--engine", "scripted", "--delay-ms", "5", "--config", str(config)]
    ) as server:
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # The console makes no request to anywhere but its own server.
    outside: list[str] = []
    context.on(
        "request",
        lambda request: (
            outside.append(request.url)
            if not request.url.startswith(("http://127.0.0.1:", "data:", "blob:"))
            else None
        ),
    )
    opened = context.new_page()
    opened.set_default_timeout(60_000)
    yield opened
    context.close()
    assert outside == []
