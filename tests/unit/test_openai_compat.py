"""The OpenAI-compatible engine's sans-IO parts: SSE decoding and chunk → event mapping,
against byte strings shaped like what vLLM / llama.cpp servers send."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from outcrop.config import ConfigError, load_settings
from outcrop.engines.base import EngineError, EngineRequestError, EngineUnavailable
from outcrop.engines.factory import build_engine
from outcrop.engines.openai_compat import (
    ChunkMapper,
    OpenAICompatEngine,
    SSEDecoder,
    UpstreamStreamError,
    request_body,
    status_error,
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


def _chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> bytes:
    choice: dict[str, object] = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
    return b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"


def _run(body: bytes, *, split: int = 7, stops: tuple[str, ...] = ()) -> list[GenerationEvent]:
    decoder, mapper = SSEDecoder(), ChunkMapper(stops, input_tokens=11)
    events: list[GenerationEvent] = []
    for start in range(0, len(body), split):
        for data in decoder.feed(body[start : start + split]):
            events += mapper.feed(data)
    for data in decoder.close():
        events += mapper.feed(data)
    return [*events, mapper.finish()]


def test_sse_decoder_handles_split_lines_crlf_comments_and_multiline_data() -> None:
    decoder = SSEDecoder()
    body = b": ping\r\n\r\ndata: a\r\ndata: b\r\n\r\nevent: x\ndata:c\n\ndata: tail"
    out: list[str] = []
    for byte in body:
        out += decoder.feed(bytes([byte]))
    out += decoder.close()
    assert out == ["a\nb", "c", "tail"]


def test_text_stream_with_usage_chunk() -> None:
    body = (
        _chunk({"role": "assistant", "content": ""})
        + _chunk({"content": "Hel"})
        + _chunk({"content": "lo"})
        + _chunk({}, "stop")
        + b'data: {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}\n\n'
        + b"data: [DONE]\n\n"
    )
    events = _run(body)
    assert events == [TokenEvent("Hel"), TokenEvent("lo"), Finish(StopReason.END_TURN, 9, 2)]


def test_without_usage_counts_deltas_and_uses_the_fallback_prompt_count() -> None:
    body = _chunk({"content": "a"}) + _chunk({"content": " b"}, "length") + b"data: [DONE]\n\n"
    assert _run(body)[-1] == Finish(StopReason.MAX_TOKENS, 11, 2)


def test_reasoning_content_becomes_reasoning_tokens() -> None:
    body = _chunk({"reasoning_content": "think"}) + _chunk({"content": "ok"}, "stop")
    events = _run(body)
    assert events[:2] == [TokenEvent("think", kind="reasoning"), TokenEvent("ok")]


def test_tool_call_fragments_map_to_tool_call_events() -> None:
    first = {"index": 0, "id": "call_x", "function": {"name": "get_weather", "arguments": ""}}
    body = (
        _chunk({"tool_calls": [first]})
        + _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]})
        + _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': "Paris"}'}}]})
        + _chunk({}, "tool_calls")
    )
    events = _run(body)
    assert events[:3] == [
        ToolCallEvent("call_x", "get_weather", "", 0),
        ToolCallEvent("call_x", "get_weather", '{"city"', 1),
        ToolCallEvent("call_x", "get_weather", ': "Paris"}', 1),
    ]
    assert isinstance(events[-1], Finish) and events[-1].stop_reason is StopReason.TOOL_USE


def test_stop_sequence_reported_by_the_upstream() -> None:
    body = _chunk({"content": "one"}, "stop", stop_reason="END")
    assert _run(body, stops=("END",))[-1] == Finish(StopReason.STOP_SEQUENCE, 11, 1, "END")
    # an EOS stop (vLLM reports a token id, or null) stays end_turn
    body = _chunk({"content": "one"}, "stop", stop_reason=None)
    assert _run(body, stops=("END",))[-1] == Finish(StopReason.END_TURN, 11, 1)


def test_legacy_completion_chunks_carry_text() -> None:
    body = b'data: {"choices": [{"index": 0, "text": "hi", "finish_reason": "length"}]}\n\n'
    assert _run(body) == [TokenEvent("hi"), Finish(StopReason.MAX_TOKENS, 11, 1)]


def test_error_event_mid_stream_raises() -> None:
    body = _chunk({"content": "a"}) + b'data: {"error": {"message": "boom", "code": 500}}\n\n'
    with pytest.raises(UpstreamStreamError, match="boom"):
        _run(body)
    with pytest.raises(UpstreamStreamError, match="malformed"):
        _run(b"data: {not json\n\n")


def test_status_errors_map_to_engine_errors() -> None:
    bad = status_error(400, '{"error": {"message": "max_tokens too large"}}')
    assert type(bad) is EngineRequestError and "max_tokens too large" in str(bad)
    assert type(status_error(422, '{"detail": [{"msg": "x"}]}')) is EngineRequestError
    assert type(status_error(503, "overloaded")) is EngineUnavailable
    assert type(status_error(500, "Internal Server Error")) is EngineError


def test_request_body_carries_sampling_tools_and_tool_turns() -> None:
    request = GenerationRequest(
        messages=(
            ChatMessage("system", "be brief"),
            ChatMessage("user", "weather?"),
            ChatMessage("assistant", "", tool_calls=(ToolCall("c1", "w", '{"a": 1}'),)),
            ChatMessage("user", "", tool_results=(ToolResult("c1", "sunny"),)),
        ),
        sampling=SamplingParams(max_tokens=5, temperature=0.0, stop_sequences=("X",)),
        tools=(ToolSpec("w", "weather", {"type": "object"}),),
        tool_choice=ToolChoice("any"),
    )
    body = request_body(request, "m")
    assert body["model"] == "m" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 5 and body["temperature"] == 0.0 and body["stop"] == ["X"]
    assert "top_p" not in body and body["tool_choice"] == "required"
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"a": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert body["tools"][0]["function"]["parameters"] == {"type": "object"}


def test_toml_engine_section_builds_the_engine(tmp_path: Path) -> None:
    config = tmp_path / "outcrop.toml"
    config.write_text(
        '[engines.default]\ntype = "openai"\nupstream = "http://127.0.0.1:8000/v1/"\n'
        'model = "qwen"\napi_key = "k"\ntimeout_s = 30\n'
    )
    engine = build_engine("default", load_settings(config).engines["default"])
    assert isinstance(engine, OpenAICompatEngine)
    assert (engine.upstream, engine.model, engine.name) == (
        "http://127.0.0.1:8000/v1",
        "qwen",
        "default",
    )
    assert not engine.health().ready
    config.write_text('[engines.default]\ntype = "openai"\nupstream = "127.0.0.1:8000"\n')
    with pytest.raises(ConfigError):
        load_settings(config)
