"""Tool-call grammars built from tool schemas, and the sampler that drops them for text."""

from __future__ import annotations

import re

from outcrop.engines.tool_grammar import (
    build_grammar,
    could_still_call,
    grammar_for,
)
from outcrop.types import (
    ChatMessage,
    GenerationRequest,
    SamplingParams,
    ToolCall,
    ToolChoice,
    ToolResult,
    ToolSpec,
)

WEATHER = ToolSpec(
    "get_weather",
    "",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 1, "maximum": 3},
            "count": {"type": "integer", "minimum": 0},
            "offset": {"type": "integer", "exclusiveMinimum": 0},
            "big": {"type": "integer", "minimum": -5, "maximum": 100000},
            "mode": {"type": "integer", "enum": [2, 4]},
            "nested": {"type": "object", "properties": {"x": {"type": "boolean"}}},
        },
        "required": ["city"],
    },
)
TIME = ToolSpec("get_time", "", {"type": "object", "properties": {"tz": {"type": "string"}}})


def rules(gbnf: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in gbnf.splitlines() if " ::= " in line)


def test_no_grammar_without_tools_or_with_choice_none() -> None:
    assert build_grammar((), ToolChoice("any")) is None
    assert build_grammar((WEATHER,), ToolChoice("none")) is None


def test_forced_call_grammar() -> None:
    grammar = build_grammar((WEATHER, TIME), ToolChoice("any"))
    assert grammar is not None and not grammar.allows_text
    table = rules(grammar.gbnf)
    assert table["root"] == "call"
    call = table["call"]
    assert call.startswith('"<tool_call>\\n" ( "{\\"name\\": \\"get_weather\\", \\"arguments\\": "')
    assert '"{\\"name\\": \\"get_time\\", \\"arguments\\": " tool1-args' in call
    assert call.endswith('"}\\n</tool_call>"')


def test_named_tool_only() -> None:
    grammar = build_grammar((WEATHER, TIME), ToolChoice("tool", "get_time"))
    assert grammar is not None
    assert "get_weather" not in grammar.gbnf and "get_time" in grammar.gbnf


def test_auto_allows_text_not_starting_a_call() -> None:
    grammar = build_grammar((WEATHER,), ToolChoice("auto"))
    assert grammar is not None and grammar.allows_text
    table = rules(grammar.gbnf)
    assert table["root"] == "call | text"
    assert table["text"] == r"[^<] [^\x00]*"


def test_schema_additions() -> None:
    grammar = build_grammar((WEATHER,), ToolChoice("any"))
    assert grammar is not None
    table = rules(grammar.gbnf)
    # JSON strings may not hold raw control characters.
    assert table["char"].startswith(r'[^"\\\x7F\x00-\x1F]')
    # Integer bounds: small ranges enumerated, lower bounds 0 and 1, others left to the converter.
    assert table["tool0-args-days"] == '("1" | "2" | "3") space'
    assert table["tool0-args-count"] == '("0" | [1-9] [0-9]{0,15}) space'
    assert table["tool0-args-offset"] == "[1-9] [0-9]{0,15} space"
    assert "tool0-args-big" not in table
    assert table["tool0-args-mode"] == '"2" | "4"'  # enums stay the converter's
    # Objects are closed: no rule admits extra keys.
    assert not any("additional" in name for name in table)
    assert re.search(r"tool0-args-nested ::= .*x-kv", grammar.gbnf)


def test_unconvertible_schema_falls_back_to_any_object() -> None:
    odd = ToolSpec("odd", "", {"type": "object", "properties": {"a": {"$ref": "https://x/y"}}})
    grammar = build_grammar((odd,), ToolChoice("any"))
    assert grammar is not None
    assert rules(grammar.gbnf)["tool0-args"]


def request(*messages: ChatMessage, choice: ToolChoice) -> GenerationRequest:
    return GenerationRequest(
        messages, SamplingParams(max_tokens=5), tools=(WEATHER,), tool_choice=choice
    )


def test_auto_answers_in_text_after_tool_results() -> None:
    turns = (
        ChatMessage("user", "Weather?"),
        ChatMessage("assistant", "", tool_calls=(ToolCall("a", "get_weather", "{}"),)),
        ChatMessage("user", "", tool_results=(ToolResult("a", "sunny"),)),
    )
    assert grammar_for(request(*turns, choice=ToolChoice("auto"))) is None
    assert grammar_for(request(*turns, choice=ToolChoice("any"))) is not None
    assert grammar_for(request(turns[0], choice=ToolChoice("auto"))) is not None


def test_could_still_call() -> None:
    assert could_still_call("") and could_still_call("<to") and could_still_call("<tool_call>\n{")
    assert not could_still_call("Hello") and not could_still_call("<tool_cal!")
