"""The engine side of an invocation: which engine answers, and running it.

`generate` is the only place outside `outcrop.engines` that calls `Engine.generate`
(tests/unit/test_architecture.py holds it to that), so that aborting, error translation and
accounting have one seam. `answering_engine` applies a scripted answer queued for the call
(gateway/scripted_responses.py) once the call is admitted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing

from outcrop.config.scripted import ScriptedResponseSettings
from outcrop.engines.base import Engine, EngineError, EngineNotReady
from outcrop.engines.deadline import DeadlineEngine
from outcrop.engines.scripted import ScriptedConfig, ScriptedEngine, ScriptedToolCall
from outcrop.invocation.context import RequestContext
from outcrop.invocation.errors import translate_engine_error
from outcrop.types import GenerationEvent, GenerationRequest
from outcrop.wire.errors import ServiceUnavailableException


def generate(engine: Engine, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
    """The engine's events for `request`, its own errors (`EngineError`) untranslated; closing
    the generator aborts the generation."""
    return engine.generate(request)


async def bedrock_events(
    engine: Engine, request: GenerationRequest, resource: str
) -> AsyncGenerator[GenerationEvent, None]:
    """The engine's events, with engine failures translated into Bedrock's errors."""
    started = False
    try:
        async with aclosing(generate(engine, request)) as events:
            async for event in events:
                started = True
                yield event
    except EngineError as exc:
        raise translate_engine_error(exc, started=started, resource=resource) from None


def count_input_tokens(engine: Engine, request: GenerationRequest, resource: str) -> int:
    """The request's input tokens by the engine's tokenizer (failures translated)."""
    try:
        return engine.count_tokens(request)
    except EngineError as exc:
        raise translate_engine_error(exc, started=False, resource=resource) from None


def count_tokens_operation(engine: Engine, request: GenerationRequest, resource: str) -> int:
    """CountTokens' count: as `count_input_tokens`, but a model still loading is a 503 (the
    operation models no ModelNotReadyException; a 503 is what the SDKs retry)."""
    try:
        return engine.count_tokens(request)
    except EngineNotReady as exc:
        raise ServiceUnavailableException(
            f"Bedrock is unable to process your request. {exc}"
        ) from None
    except EngineError as exc:
        raise translate_engine_error(exc, started=False, resource=resource) from None


def scripted_engine(settings: ScriptedResponseSettings) -> ScriptedEngine:
    """The engine that gives a scripted response's answer."""
    # No tool_calls: none, even when the request offers tools (the scripted engine would
    # otherwise derive one from the tool's schema).
    calls = tuple(
        ScriptedToolCall(c.name, json.dumps(c.input, separators=(",", ":")))
        for c in settings.tool_calls or ()
    )
    config = ScriptedConfig(
        text=settings.text,
        token_count=settings.token_count,
        delay_ms=settings.delay_ms,
        first_token_delay_ms=settings.first_token_delay_ms,
        reasoning=settings.reasoning,
        tool_calls=calls,
    )
    return ScriptedEngine(config, name="scripted-response")


async def picked_engine(ctx: RequestContext) -> Engine | None:
    """The engine of the scripted answer queued for this call, if any (call it once the call
    is admitted, so that a call refused by a quota consumes none)."""
    pick = ctx.call.scripted
    answer = await pick() if pick is not None else None
    if answer is None:
        return None
    engine = scripted_engine(answer.settings)
    return engine if answer.timeout_s is None else DeadlineEngine(engine, answer.timeout_s)


async def answering_engine(ctx: RequestContext, engine: Engine) -> Engine:
    """The engine that answers an admitted call: a scripted answer's, else `engine`."""
    chosen = await picked_engine(ctx)
    return chosen if chosen is not None else engine
