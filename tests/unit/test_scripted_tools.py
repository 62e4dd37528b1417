"""The scripted engine's tool calls and reasoning (what dialect tests rely on)."""

from __future__ import annotations

import asyncio
import json

from outcrop.engines.scripted import (
    ScriptedConfig,
    ScriptedEngine,
    ScriptedToolCall,
    schema_example,
)
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationEvent,
    GenerationRequest,
    ReasoningConfig,
    SamplingParams,
    StopReason,
    TokenEvent,
    ToolCall,
    ToolCallEvent,
    ToolChoice,
    ToolResult,
    ToolSpec,
)

WEATHER = ToolSpec(
    "get_weather",
    "Weather in a city",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 2},
        },
        "required": ["city", "unit", "days"],
    },
)
TIME = ToolSpec("get_time", "", {"type": "object", "properties": {"zone": {"type": "string"}}})


def run(engine: ScriptedEngine, request: GenerationRequest) -> list[GenerationEvent]:
    async def collect() -> list[GenerationEvent]:
        return [event async for event in engine.generate(request)]

    return asyncio.run(collect())


def request(**kwargs: object) -> GenerationRequest:
    messages = kwargs.pop("messages", (ChatMessage("user", "Weather in Paris?"),))
    return GenerationRequest(messages, SamplingParams(max_tokens=100), **kwargs)  # type: ignore[arg-type]


def test_schema_example_validates_simple_schemas() -> None:
    assert schema_example(WEATHER.input_schema) == {
        "city": "scripted",
        "unit": "celsius",
        "days": 2,
    }
    assert schema_example({"type": "array", "items": {"type": "boolean"}}) == [True]


def test_offered_tool_is_called_in_fragments_with_empty_first() -> None:
    events = run(ScriptedEngine(), request(tools=(WEATHER, TIME)))
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert not [e for e in events if isinstance(e, TokenEvent)]
    assert calls[0].arguments == "" and calls[0].token_count == 0
    assert {c.call_id for c in calls} == {"call_0"} and {c.name for c in calls} == {"get_weather"}
    assert json.loads("".join(c.arguments for c in calls)) == schema_example(WEATHER.input_schema)
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.stop_reason is StopReason.TOOL_USE
    assert finish.output_tokens == sum(c.token_count for c in calls)


def test_forced_tool_and_none_choice() -> None:
    forced = run(
        ScriptedEngine(), request(tools=(WEATHER, TIME), tool_choice=ToolChoice("tool", "get_time"))
    )
    assert {e.name for e in forced if isinstance(e, ToolCallEvent)} == {"get_time"}
    none = run(ScriptedEngine(), request(tools=(WEATHER,), tool_choice=ToolChoice("none")))
    assert not [e for e in none if isinstance(e, ToolCallEvent)]
    assert isinstance(none[-1], Finish) and none[-1].stop_reason is StopReason.END_TURN


def test_tool_result_turn_gets_a_text_answer() -> None:
    messages = (
        ChatMessage("user", "Weather in Paris?"),
        ChatMessage("assistant", "", tool_calls=(ToolCall("t1", "get_weather", "{}"),)),
        ChatMessage("user", "", tool_results=(ToolResult("t1", "Sunny, 21 C"),)),
    )
    events = run(ScriptedEngine(), request(tools=(WEATHER,), messages=messages))
    text = "".join(e.text for e in events if isinstance(e, TokenEvent))
    assert text == "Echo: Sunny, 21 C"
    assert isinstance(events[-1], Finish) and events[-1].stop_reason is StopReason.END_TURN


def test_configured_calls_and_reasoning_come_in_order() -> None:
    engine = ScriptedEngine(
        ScriptedConfig(
            text="Let me check.",
            reasoning="The user wants weather.",
            tool_calls=(ScriptedToolCall("a", '{"x": 1}'), ScriptedToolCall("b", "{}")),
        )
    )
    events = run(engine, request(tools=(WEATHER,), reasoning=ReasoningConfig(budget_tokens=3)))
    kinds = [
        e.kind if isinstance(e, TokenEvent) else e.call_id
        for e in events
        if not isinstance(e, Finish)
    ]
    assert kinds == ["reasoning"] * 3 + ["text"] * 4 + ["call_0"] * 8 + ["call_1"] * 3
    reasoning = "".join(
        e.text for e in events if isinstance(e, TokenEvent) and e.kind == "reasoning"
    )
    assert reasoning == "The user wants"


def test_max_tokens_cuts_a_tool_call() -> None:
    events = run(
        ScriptedEngine(),
        GenerationRequest(
            (ChatMessage("user", "hi"),), SamplingParams(max_tokens=3), tools=(WEATHER,)
        ),
    )
    assert isinstance(events[-1], Finish)
    assert events[-1].stop_reason is StopReason.MAX_TOKENS and events[-1].output_tokens == 3
