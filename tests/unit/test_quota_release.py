"""A call that fails with a 500 gives its concurrency slot back (issue 13, item 5).

Five streams failing with an internal error used to hold a model's `concurrent_streams` slots
until restart; now the interceptors' `after` runs for them as for any other ending.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from outcrop.config import Settings
from outcrop.engines.base import Engine
from outcrop.engines.scripted import ScriptedEngine
from outcrop.gateway.app import OutcropApp
from outcrop.types import EngineHealth, GenerationEvent, GenerationRequest
from tests.asgi_driver import call
from tests.unit.test_security import PATH, claude

STREAM = PATH.replace("/invoke", "/invoke-with-response-stream")


class BrokenEngine(Engine):
    """Fails with a bug (not an engine error) until `healed`, then answers as scripted."""

    def __init__(self) -> None:
        self.name = "default"
        self.healed = False
        self.scripted = ScriptedEngine()

    def health(self) -> EngineHealth:
        return EngineHealth(ready=True, state="ready")

    def count_tokens(self, request: GenerationRequest) -> int:
        return 3

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        if not self.healed:
            raise RuntimeError("a bug in the engine")
        async for event in self.scripted.generate(request):
            yield event


async def test_streams_failing_with_500_release_their_slots() -> None:
    engine = BrokenEngine()
    settings = Settings.model_validate(
        {
            "engines": {"default": {"type": "scripted"}},
            "quotas": [{"model": "*", "concurrent_streams": 2}],
        }
    )
    app = OutcropApp(settings, engines={"default": engine})
    for _ in range(6):
        failed = await call(app, "POST", STREAM, claude())
        assert failed.status == 500, failed.body
    engine.healed = True
    ok = await call(app, "POST", STREAM, claude())
    assert ok.status == 200, ok.body
    assert ok.headers["content-type"] == "application/vnd.amazon.eventstream"
