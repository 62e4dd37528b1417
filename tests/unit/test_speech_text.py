"""Sentences and tool calls in streamed text."""

from __future__ import annotations

from outcrop.speech.text import SentenceSplitter, ToolCall, ToolCallScanner, parse_tool_call


def split(pieces: list[str]) -> list[str]:
    splitter = SentenceSplitter()
    out = [s for piece in pieces for s in splitter.feed(piece)]
    return out + splitter.flush()


def test_sentences_complete_as_tokens_arrive() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Hello there") == []
    assert splitter.feed("3.5 km. How are") == ["Hello there3.5 km."]
    assert splitter.feed(" you? Fine") == ["How are you?"]
    assert splitter.flush() == ["Fine"]


def test_markup_is_not_spoken_and_long_runs_are_cut() -> None:
    assert split(["**Bold** and `code`.\n# Title\n"]) == ["Bold and code.", "Title"]
    long = split(["word " * 100])
    assert len(long) > 1 and all(len(s) <= 220 for s in long)


def test_tool_call_split_across_tokens() -> None:
    scanner = ToolCallScanner()
    text = 'Let me check. <tool_call>{"name": "getWeather", "arguments": {"city": "Paris"}}'
    text += "</tool_call>"
    spoken, calls = "", []
    for i in range(0, len(text), 3):
        said, call = scanner.feed(text[i : i + 3])
        spoken += said
        calls += [call] if call else []
    assert spoken == "Let me check. "
    assert calls == [ToolCall("getWeather", '{"city": "Paris"}')]


def test_a_lone_angle_bracket_is_spoken_eventually() -> None:
    scanner = ToolCallScanner()
    assert scanner.feed("a <") == ("a ", None)
    assert scanner.feed("b") == ("<b", None)
    assert scanner.feed("x <tool") == ("x ", None)
    assert scanner.flush() == "<tool"


def test_malformed_calls_are_dropped() -> None:
    assert parse_tool_call("{not json") is None
    assert parse_tool_call('{"arguments": {}}') is None
    assert parse_tool_call('{"name": "t", "input": {"a": 1}}') == ToolCall("t", '{"a": 1}')
