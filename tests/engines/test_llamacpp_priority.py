"""The llama.cpp engine serves waiting generations by priority (service tier), then arrival."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from outcrop.engines.default_model import default_model_path
from outcrop.engines.llamacpp import LlamaCppEngine
from outcrop.invocation.request_options import tier_priority
from outcrop.types import ChatMessage, Finish, GenerationRequest, SamplingParams


def request(text: str, tier: str | None) -> GenerationRequest:
    plain = GenerationRequest(
        (ChatMessage("user", text),), SamplingParams(max_tokens=4, temperature=0.0)
    )
    return dataclasses.replace(plain, priority=tier_priority(tier))


@pytest.mark.llamacpp
async def test_priority_before_default_before_flex() -> None:
    engine = LlamaCppEngine(default_model_path(), n_ctx=512)
    await engine.start()
    assert engine.health().ready, engine.health().detail
    finished: list[str] = []

    async def run(name: str, tier: str | None) -> None:
        events: AsyncIterator[object] = engine.generate(request(f"Say {name}.", tier))
        async for event in events:
            if isinstance(event, Finish):
                finished.append(name)

    try:
        busy = asyncio.create_task(run("first", None))
        await asyncio.sleep(0)  # it takes the model; the others queue behind it
        queued = []
        for name, tier in (("flex", "flex"), ("default", "default"), ("priority", "priority")):
            queued.append(asyncio.create_task(run(name, tier)))
            await asyncio.sleep(0)
        assert engine.queue_depth == 3
        await asyncio.gather(busy, *queued)
    finally:
        await engine.close()
    assert finished == ["first", "priority", "default", "flex"]
