"""The scripted engine: deterministic echo, limits, stop sequences and delays."""

from __future__ import annotations

import asyncio
import time

from outcrop.engines.scripted import ScriptedConfig, ScriptedEngine, tokenize
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationRequest,
    SamplingParams,
    StopReason,
    TokenEvent,
)


def request(text: str, max_tokens: int = 100, stops: tuple[str, ...] = ()) -> GenerationRequest:
    return GenerationRequest(
        (ChatMessage("system", "sys"), ChatMessage("user", text)),
        SamplingParams(max_tokens=max_tokens, stop_sequences=stops),
    )


async def run(engine: ScriptedEngine, req: GenerationRequest) -> tuple[str, Finish]:
    pieces: list[str] = []
    finish = None
    async for event in engine.generate(req):
        if isinstance(event, TokenEvent):
            pieces.append(event.text)
        elif isinstance(event, Finish):
            finish = event
    assert finish is not None
    return "".join(pieces), finish


def test_tokenize_round_trips() -> None:
    text = "Hello, world! It's  fine."
    assert "".join(tokenize(text)) == text


async def test_echo_is_deterministic() -> None:
    engine = ScriptedEngine()
    first = await run(engine, request("What  is granite?"))
    second = await run(engine, request("What  is granite?"))
    assert first == second
    assert first[0] == "Echo: What is granite?"
    assert first[1].stop_reason is StopReason.END_TURN
    assert first[1].output_tokens == len(tokenize(first[0]))
    assert first[1].input_tokens == engine.count_tokens(request("What  is granite?"))


async def test_max_tokens_cuts() -> None:
    text, finish = await run(ScriptedEngine(), request("one two three four", max_tokens=3))
    assert text == "Echo: one"
    assert (finish.stop_reason, finish.output_tokens) == (StopReason.MAX_TOKENS, 3)


async def test_stop_sequence_is_not_emitted() -> None:
    text, finish = await run(ScriptedEngine(), request("alpha beta gamma", stops=(" gamma",)))
    assert text == "Echo: alpha beta"
    assert finish.stop_reason is StopReason.STOP_SEQUENCE
    assert finish.stop_sequence == " gamma"


async def test_configured_text_and_token_count() -> None:
    engine = ScriptedEngine(ScriptedConfig(text="a b", token_count=5))
    text, finish = await run(engine, request("x"))
    assert text == "a b a b a"
    assert finish.output_tokens == 5


async def test_delay_and_abort() -> None:
    engine = ScriptedEngine(ScriptedConfig(text="x " * 50, delay_ms=20))
    gen = engine.generate(request("x"))
    started = time.monotonic()
    await anext(gen)
    await anext(gen)
    await gen.aclose()
    assert time.monotonic() - started < 0.5
    await asyncio.sleep(0)


async def test_scripted_failure_after_k_tokens() -> None:
    import pytest

    from outcrop.engines.base import EngineError

    engine = ScriptedEngine(ScriptedConfig(text="a b c d", fail_after_tokens=2))
    gen = engine.generate(request("x"))
    assert isinstance(await anext(gen), TokenEvent)
    assert isinstance(await anext(gen), TokenEvent)
    with pytest.raises(EngineError):
        await anext(gen)
