"""The local models' tool-call text protocol: prompt rendering and streaming parse."""

from __future__ import annotations

import json

import pytest

from outcrop.engines.tool_calls import (
    CALL_OPEN,
    ToolCallParser,
    answers_tool_results,
    render_call,
    tools_in_prompt,
    tools_prompt,
)
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationEvent,
    GenerationRequest,
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
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
ARGUMENTS = '{"city": "Lis}bon \\"old\\" {town}", "tags": [{"a": 1}, []]}'
CALL_TEXT = render_call("get_weather", ARGUMENTS)


def parse(pieces: list[str], stop: StopReason = StopReason.END_TURN) -> list[GenerationEvent]:
    parser = ToolCallParser()
    events: list[GenerationEvent] = []
    for piece in pieces:
        events += parser.feed(TokenEvent(piece))
    return events + parser.finish(Finish(stop, 10, len(pieces)))


def split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 1000])
def test_a_call_in_any_token_split(size: int) -> None:
    events = parse(split(CALL_TEXT, size))
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert not [e for e in events if isinstance(e, TokenEvent)]
    assert calls[0].arguments == ""
    assert {(c.call_id, c.name) for c in calls} == {("call_0", "get_weather")}
    assert "".join(c.arguments for c in calls) == ARGUMENTS
    json.loads(ARGUMENTS)
    assert sum(c.token_count for c in calls) <= len(split(CALL_TEXT, size))
    assert events[-1] == Finish(StopReason.TOOL_USE, 10, len(split(CALL_TEXT, size)))


def test_answer_text_passes_through() -> None:
    events = parse(["Hello", " there"])
    assert events == [
        TokenEvent("Hello"),
        TokenEvent(" there"),
        Finish(StopReason.END_TURN, 10, 2),
    ]


def test_text_that_only_looks_like_a_call_at_first() -> None:
    events = parse(["<tool", "box> is", " a tag"])
    assert events[:2] == [TokenEvent("<toolbox> is", 2), TokenEvent(" a tag")]
    assert events[-1].stop_reason is StopReason.END_TURN  # type: ignore[union-attr]


def test_undecided_text_is_flushed_at_the_end() -> None:
    assert parse(["<tool_"], StopReason.MAX_TOKENS) == [
        TokenEvent("<tool_"),
        Finish(StopReason.MAX_TOKENS, 10, 1),
    ]


def test_call_cut_by_max_tokens_keeps_its_fragments() -> None:
    text = CALL_OPEN + '{"name": "get_weather", "arguments": {"city": "Li'
    events = parse(split(text, 4), StopReason.MAX_TOKENS)
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert "".join(c.arguments for c in calls) == '{"city": "Li'
    assert events[-1].stop_reason is StopReason.MAX_TOKENS  # type: ignore[union-attr]


def test_reasoning_passes_through() -> None:
    parser = ToolCallParser()
    thought = TokenEvent("hmm", kind="reasoning")
    assert parser.feed(thought) == [thought]


def test_a_malformed_header_becomes_text() -> None:
    events = parse([CALL_OPEN, '{"tool": 1}'])
    assert events[0] == TokenEvent(CALL_OPEN + '{"tool": 1}', 2)


def test_tools_prompt_lists_tools_and_the_choice() -> None:
    text = tools_prompt([WEATHER], ToolChoice("tool", "get_weather"))
    assert '"name": "get_weather"' in text and '"required": ["city"]' in text
    assert "<tool_call>" in text and "You must call the tool get_weather now." in text
    assert "You must call one of the tools now." in tools_prompt([WEATHER], ToolChoice("any"))


def test_prompt_request_renders_tool_turns() -> None:
    request = GenerationRequest(
        (
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "Weather?"),
            ChatMessage(
                "assistant",
                "Checking.",
                tool_calls=(ToolCall("tu_1", "get_weather", '{"city":"Oslo"}'),),
            ),
            ChatMessage("user", "", tool_results=(ToolResult("tu_1", "-3C"),)),
        ),
        SamplingParams(max_tokens=10),
        tools=(WEATHER,),
    )
    assert answers_tool_results(request)
    rendered = tools_in_prompt(request).messages
    assert rendered[0].text.startswith("Be brief.\n\nYou can call these tools:")
    assert rendered[0].text.endswith("Now answer the user in text, using the tool results.")
    assert rendered[2].text == "Checking.\n" + render_call("get_weather", '{"city": "Oslo"}')
    assert rendered[3].text == "<tool_response>\nget_weather returned: -3C\n</tool_response>"
    assert all(not m.tool_calls and not m.tool_results for m in rendered)


def test_requests_without_tools_are_unchanged() -> None:
    request = GenerationRequest((ChatMessage("user", "Hi"),), SamplingParams(max_tokens=5))
    assert tools_in_prompt(request) is request
