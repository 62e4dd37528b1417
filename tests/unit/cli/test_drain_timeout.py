"""`[server] drain_timeout_s` is how long `outcrop serve` lets calls in flight finish after
SIGTERM (the server's graceful stop: tests/conformance/test_transport.py)."""

from __future__ import annotations

from typing import Any

import pytest

from outcrop import server
from outcrop.cli.main import _serve
from outcrop.cli.startup import StartupTracebacks
from outcrop.config import Settings


@pytest.mark.parametrize(("configured", "expected"), [(None, 30.0), (2.5, 2.5)])
async def test_serve_drains_for_the_configured_time(
    monkeypatch: pytest.MonkeyPatch, configured: float | None, expected: float
) -> None:
    seen: dict[str, Any] = {}

    async def fake_serve(app: Any, **options: Any) -> None:
        seen.update(options)

    monkeypatch.setattr(server, "serve", fake_serve)
    section = {} if configured is None else {"drain_timeout_s": configured}
    settings = Settings.model_validate(
        {"engines": {"default": {"type": "scripted"}}, "server": section}
    )
    await _serve(settings, StartupTracebacks())
    assert seen["shutdown_timeout"] == expected
