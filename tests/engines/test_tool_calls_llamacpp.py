"""Tool calls from the real embedded model (managed llama-server): for schemas of several
kinds, llama.cpp accepts the grammar derived from them and the model's forced call validates
against the schema; input-token counts include the tools' prompt."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest

from outcrop.engines.llama_server import LlamaServerEngine, LlamaServerOptions
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    StopReason,
    TokenEvent,
    ToolCallEvent,
    ToolChoice,
    ToolSpec,
)

pytestmark = pytest.mark.llamacpp

SCHEMAS: dict[str, dict[str, Any]] = {
    "nested_and_arrays": {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 40},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
            "author": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["name"],
            },
        },
        "required": ["title", "tags", "author"],
    },
    "enums_bounds_and_unions": {
        "type": "object",
        "properties": {
            "level": {"type": "string", "enum": ["low", "medium", "high"]},
            "count": {"type": "integer", "minimum": 1, "maximum": 9},
            "ratio": {"type": "number"},
            "target": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "confirm": {"type": "boolean"},
        },
        "required": ["level", "count", "ratio", "target", "confirm"],
    },
    "refs_and_formats": {
        "type": "object",
        "$defs": {"city": {"type": "string", "minLength": 2}},
        "properties": {
            "from": {"$ref": "#/$defs/city"},
            "on": {"type": "string", "format": "date"},
        },
        "required": ["from", "on"],
    },
}


@pytest.fixture
async def engine() -> AsyncIterator[LlamaServerEngine]:
    engine = LlamaServerEngine(options=LlamaServerOptions(n_ctx=2048, parallel=1))
    await engine.start()
    assert engine.health().ready, engine.health().detail
    yield engine
    await engine.close()


def request(schema: dict[str, Any], choice: ToolChoice, max_tokens: int = 96) -> GenerationRequest:
    return GenerationRequest(
        (ChatMessage("user", "Please use the tool."),),
        SamplingParams(max_tokens=max_tokens, temperature=0),
        tools=(ToolSpec("act", "Does the thing", schema),),
        tool_choice=choice,
    )


async def run(engine: LlamaServerEngine, req: GenerationRequest) -> list[GenerationEvent]:
    return [event async for event in engine.generate(req)]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
async def test_forced_call_validates_against_its_schema(
    engine: LlamaServerEngine, name: str
) -> None:
    schema = SCHEMAS[name]
    events = await run(engine, request(schema, ToolChoice("tool", "act")))
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert not [e for e in events if isinstance(e, TokenEvent)]
    assert {c.name for c in calls} == {"act"} and calls[0].arguments == ""
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert finish.stop_reason is StopReason.TOOL_USE, "".join(c.arguments for c in calls)
    jsonschema.validate(json.loads("".join(c.arguments for c in calls)), schema)
    assert finish.output_tokens > sum(c.token_count for c in calls)  # + the closing text, EOT


async def test_input_tokens_include_the_tools(engine: LlamaServerEngine) -> None:
    with_tools = request(SCHEMAS["refs_and_formats"], ToolChoice("any"), max_tokens=4)
    plain = GenerationRequest(with_tools.messages, with_tools.sampling)
    counted = engine.count_tokens(with_tools)
    assert counted > engine.count_tokens(plain) + 50
    events = await run(engine, with_tools)
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert finish.input_tokens == counted
    assert finish.stop_reason is StopReason.MAX_TOKENS
