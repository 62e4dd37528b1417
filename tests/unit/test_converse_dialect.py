"""The Converse dialect: request translation, Bedrock's own checks, the event sequence."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from outcrop.dialects.converse import (
    MUST_ALTERNATE,
    MUST_START_WITH_USER,
    TOOL_CONFIG_REQUIRED,
    ConverseEncoder,
    ConverseEvent,
    assemble_output,
    parse_request,
    response_fields,
    tool_use_id,
)
from outcrop.types import (
    ChatMessage,
    Finish,
    ReasoningConfig,
    StopReason,
    TokenEvent,
    ToolCall,
    ToolCallEvent,
    ToolChoice,
    ToolResult,
)
from outcrop.wire.errors import ValidationException

WEATHER = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Weather in a city",
        "inputSchema": {
            "json": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            }
        },
    }
}


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(value: str) -> dict[str, Any]:
    return {"text": value}


def rejected(body: dict[str, Any]) -> str:
    with pytest.raises(ValidationException) as caught:
        parse_request(body)
    return caught.value.message


# -- request translation -----------------------------------------------------------------------


def test_messages_system_and_inference_config() -> None:
    parsed = parse_request(
        {
            "messages": [
                user(text("Hi"), text("there")),
                assistant(text("Hello")),
                user(text("?")),
            ],
            "system": [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}],
            "inferenceConfig": {
                "maxTokens": 7,
                "temperature": 0.5,
                "topP": 0.9,
                "stopSequences": ["###"],
            },
            "additionalModelRequestFields": {"top_k": 20},
        },
        request_id="r1",
    )
    request = parsed.request
    assert request.messages == (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hi\nthere"),
        ChatMessage("assistant", "Hello"),
        ChatMessage("user", "?"),
    )
    sampling = request.sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.top_p, sampling.top_k) == (
        7,
        0.5,
        0.9,
        20,
    )
    assert sampling.stop_sequences == ("###",)
    assert request.request_id == "r1"
    assert request.tools == () and request.reasoning is None


def test_nova_top_k_spelling_and_default_max_tokens() -> None:
    parsed = parse_request(
        {
            "messages": [user(text("Hi"))],
            "additionalModelRequestFields": {"inferenceConfig": {"topK": 3}},
        }
    )
    assert parsed.request.sampling.top_k == 3
    assert parsed.request.sampling.max_tokens == 4096


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, ToolChoice("auto")),
        ({"auto": {}}, ToolChoice("auto")),
        ({"any": {}}, ToolChoice("any")),
        ({"tool": {"name": "get_weather"}}, ToolChoice("tool", "get_weather")),
    ],
)
def test_tool_config(choice: dict[str, Any] | None, expected: ToolChoice) -> None:
    config: dict[str, Any] = {"tools": [WEATHER, {"cachePoint": {"type": "default"}}]}
    if choice is not None:
        config["toolChoice"] = choice
    request = parse_request({"messages": [user(text("Hi"))], "toolConfig": config}).request
    assert [t.name for t in request.tools] == ["get_weather"]
    assert request.tools[0].description == "Weather in a city"
    assert request.tools[0].input_schema["required"] == ["city"]
    assert request.tool_choice == expected


def test_tool_history_becomes_calls_and_results() -> None:
    request = parse_request(
        {
            "messages": [
                user(text("Weather in Paris?")),
                assistant(
                    text("Let me look."),
                    {
                        "toolUse": {
                            "toolUseId": "tu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    },
                ),
                user(
                    {
                        "toolResult": {
                            "toolUseId": "tu_1",
                            "content": [{"json": {"temp": 21}}, {"text": "sunny"}],
                        }
                    },
                    text("Thanks"),
                ),
            ],
            "toolConfig": {"tools": [WEATHER]},
        }
    ).request
    call = request.messages[1]
    assert call.text == "Let me look."
    assert call.tool_calls == (ToolCall("tu_1", "get_weather", '{"city": "Paris"}'),)
    result = request.messages[2]
    assert result.tool_results == (ToolResult("tu_1", '{"temp": 21}\nsunny'),)
    assert result.text == "Thanks"


def test_error_tool_result() -> None:
    request = parse_request(
        {
            "messages": [
                user(text("Go")),
                assistant({"toolUse": {"toolUseId": "a", "name": "get_weather", "input": {}}}),
                user(
                    {
                        "toolResult": {
                            "toolUseId": "a",
                            "content": [{"text": "boom"}],
                            "status": "error",
                        }
                    }
                ),
            ],
            "toolConfig": {"tools": [WEATHER]},
        }
    ).request
    assert request.messages[2].tool_results == (ToolResult("a", "boom", is_error=True),)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, ReasoningConfig(1024)),
        ({"thinking": {"type": "adaptive"}}, ReasoningConfig()),
        ({"thinking": {"type": "disabled"}}, None),
        ({"reasoning_effort": "high"}, ReasoningConfig(effort="high")),
        (
            {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "low"}},
            ReasoningConfig(effort="low"),
        ),
        ({"unrelated": True}, None),
    ],
)
def test_reasoning_in_any_familys_spelling(
    fields: dict[str, Any], expected: ReasoningConfig | None
) -> None:
    body = {"messages": [user(text("Hi"))], "additionalModelRequestFields": fields}
    assert parse_request(body).request.reasoning == expected


def test_documents_and_earlier_reasoning() -> None:
    request = parse_request(
        {
            "messages": [
                user(
                    {"document": {"name": "notes", "format": "txt", "source": {"text": "a b c"}}},
                    {
                        "document": {
                            "name": "raw",
                            "format": "md",
                            "source": {"bytes": base64.b64encode(b"# T").decode()},
                        }
                    },
                    text("Summarise"),
                ),
                assistant(
                    {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s"}}},
                    text("Done"),
                ),
                user(text("More")),
            ]
        }
    ).request
    assert request.messages[0].text == "notes:\na b c\nraw:\n# T\nSummarise"
    assert request.messages[1].text == "Done"


def test_echoed_fields() -> None:
    parsed = parse_request(
        {
            "messages": [user(text("Hi"))],
            "additionalModelResponseFieldPaths": ["/stop_sequence"],
            "performanceConfig": {"latency": "optimized"},
            "serviceTier": {"type": "flex"},
            "requestMetadata": {"team": "a"},
        }
    )
    assert parsed.response_field_paths == ("/stop_sequence",)
    assert parsed.performance_config == {"latency": "optimized"}
    assert parsed.service_tier == {"type": "flex"}
    assert parsed.request_metadata == {"team": "a"}


# -- Bedrock's own checks ----------------------------------------------------------------------


def test_first_message_must_be_from_the_user() -> None:
    assert rejected({"messages": [assistant(text("Hi")), user(text("Yo"))]}) == MUST_START_WITH_USER
    assert rejected({"messages": []}) == MUST_START_WITH_USER


def test_roles_must_alternate() -> None:
    assert rejected({"messages": [user(text("a")), user(text("b"))]}) == MUST_ALTERNATE
    body = {"messages": [user(text("a")), {"role": "system", "content": [text("b")]}]}
    assert rejected(body) == MUST_ALTERNATE


def test_empty_content_and_blank_text() -> None:
    assert rejected({"messages": [user(text("a")), assistant()]}) == (
        "The content field in the Message object at messages.1 is empty. Add a ContentBlock "
        "object to the content field and try again."
    )
    assert rejected({"messages": [user(text("a"), text(""))]}) == (
        "The text field in the ContentBlock object at messages.0.content.1 is blank. Add text "
        "to the text field, and try again."
    )
    assert rejected({"messages": [user(text("  \n"))]}) == (
        "The text field in the ContentBlock object at messages.0.content.0 is blank. Add text "
        "to the text field, and try again."
    )


def test_whitespace_beside_real_content_is_accepted() -> None:
    # As Bedrock answered pydantic-ai's cache-point request (a "\n" block after a document).
    body = {"messages": [user(text("a"), text("\n"), {"cachePoint": {"type": "default"}})]}
    parsed = parse_request(body)
    assert parsed is not None


def test_tool_blocks_need_a_tool_config() -> None:
    body = {
        "messages": [
            user(text("a")),
            assistant({"toolUse": {"toolUseId": "x", "name": "get_weather", "input": {}}}),
        ]
    }
    assert rejected(body) == TOOL_CONFIG_REQUIRED


def test_more_results_than_uses() -> None:
    result = {"toolResult": {"toolUseId": "x", "content": [text("r")]}}
    body = {
        "messages": [
            user(text("a")),
            assistant({"toolUse": {"toolUseId": "x", "name": "get_weather", "input": {}}}),
            user(result, result),
        ],
        "toolConfig": {"tools": [WEATHER]},
    }
    assert rejected(body) == (
        "The number of toolResult blocks at messages.2.content exceeds the number of toolUse "
        "blocks of previous turn."
    )


def test_error_result_needs_content() -> None:
    body = {
        "messages": [
            user(text("a")),
            assistant({"toolUse": {"toolUseId": "x", "name": "get_weather", "input": {}}}),
            user({"toolResult": {"toolUseId": "x", "content": [], "status": "error"}}),
        ],
        "toolConfig": {"tools": [WEATHER]},
    }
    assert rejected(body) == (
        "The content field at messages.2.content.0.toolResult cannot be empty when status value "
        "is error."
    )


def test_input_schema_must_be_an_object() -> None:
    bad = {"toolSpec": {"name": "t", "inputSchema": {"json": "not a schema"}}}
    body = {"messages": [user(text("a"))], "toolConfig": {"tools": [WEATHER, bad]}}
    assert rejected(body) == (
        "The format of the value at toolConfig.tools.1.toolSpec.inputSchema.json is invalid. "
        "Provide a json object for the field and try again."
    )


def test_forced_tool_must_be_offered_and_names_unique() -> None:
    body = {
        "messages": [user(text("a"))],
        "toolConfig": {"tools": [WEATHER], "toolChoice": {"tool": {"name": "other"}}},
    }
    assert "other" in rejected(body)
    body = {"messages": [user(text("a"))], "toolConfig": {"tools": [WEATHER, WEATHER]}}
    assert "duplicate" in rejected(body)


def test_media_is_refused_by_the_text_only_served_model() -> None:
    image = {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}
    assert "image" in rejected({"messages": [user(image, text("What is this?"))]})
    pdf = {"document": {"name": "d", "format": "pdf", "source": {"bytes": "JVBERi0="}}}
    assert "pdf" in rejected({"messages": [user(pdf, text("Summarise"))]})


# -- the event sequence ------------------------------------------------------------------------


def run(
    events: list[TokenEvent | ToolCallEvent],
    finish: Finish,
    *,
    signs: bool = False,
    max_tokens: int = 100,
    **extra: Any,
) -> list[ConverseEvent]:
    encoder = ConverseEncoder(signs_reasoning=signs)
    out = encoder.start()
    for event in events:
        out += (
            encoder.tool_call(event) if isinstance(event, ToolCallEvent) else encoder.token(event)
        )
    out += encoder.finish(finish, latency_ms=12, requested_max_tokens=max_tokens, **extra)
    return out


def kinds(events: list[ConverseEvent]) -> list[str]:
    return [kind for kind, _ in events]


def test_text_answer() -> None:
    events = run([TokenEvent("Hello"), TokenEvent(" world")], Finish(StopReason.END_TURN, 5, 2))
    assert events == [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " world"}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
        (
            "metadata",
            {
                "metrics": {"latencyMs": 12},
                "usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7},
            },
        ),
    ]
    assert assemble_output(events) == {
        "metrics": {"latencyMs": 12},
        "output": {"message": {"content": [{"text": "Hello world"}], "role": "assistant"}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7},
    }


def test_reasoning_then_text_with_a_signature() -> None:
    events = run(
        [
            TokenEvent("Let me", kind="reasoning"),
            TokenEvent(" think", kind="reasoning"),
            TokenEvent("Yes"),
        ],
        Finish(StopReason.END_TURN, 3, 3),
        signs=True,
    )
    assert kinds(events) == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[1][1]["delta"] == {"reasoningContent": {"text": "Let me"}}
    signature = events[3][1]["delta"]["reasoningContent"]["signature"]
    assert base64.b64decode(signature)
    assert events[5][1] == {"contentBlockIndex": 1, "delta": {"text": "Yes"}}
    content = assemble_output(events)["output"]["message"]["content"]
    assert content == [
        {"reasoningContent": {"reasoningText": {"signature": signature, "text": "Let me think"}}},
        {"text": "Yes"},
    ]


def test_reasoning_without_a_signature() -> None:
    events = run([TokenEvent("hm", kind="reasoning")], Finish(StopReason.END_TURN, 1, 1))
    content = assemble_output(events)["output"]["message"]["content"]
    assert content == [{"reasoningContent": {"reasoningText": {"text": "hm"}}}]


def test_tool_call_blocks() -> None:
    events = run(
        [
            TokenEvent("Checking."),
            ToolCallEvent("c0", "get_weather", ""),
            ToolCallEvent("c0", "get_weather", '{"city": '),
            ToolCallEvent("c0", "get_weather", '"Paris"}'),
            ToolCallEvent("c1", "get_weather", '{"city": "Rome"}'),
        ],
        Finish(StopReason.TOOL_USE, 9, 12),
    )
    assert kinds(events) == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockStop",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    start = events[3][1]
    assert start["contentBlockIndex"] == 1
    use_id = start["start"]["toolUse"]["toolUseId"]
    assert start["start"] == {"toolUse": {"name": "get_weather", "toolUseId": use_id}}
    assert re.fullmatch(r"tooluse_[A-Za-z0-9_-]{22}", use_id)
    assert events[4][1] == {"contentBlockIndex": 1, "delta": {"toolUse": {"input": ""}}}
    assert events[11][1] == {"stopReason": "tool_use"}
    content = assemble_output(events)["output"]["message"]["content"]
    assert content[0] == {"text": "Checking."}
    assert content[1] == {
        "toolUse": {"input": {"city": "Paris"}, "name": "get_weather", "toolUseId": use_id}
    }
    assert content[2]["toolUse"]["input"] == {"city": "Rome"}
    assert content[2]["toolUse"]["toolUseId"] != use_id


def test_tool_use_ids_are_unique() -> None:
    assert len({tool_use_id() for _ in range(200)}) == 200


def test_empty_answer_is_one_empty_text_block() -> None:
    events = run([], Finish(StopReason.END_TURN, 4, 1))
    assert kinds(events) == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert assemble_output(events)["output"]["message"]["content"] == [{"text": ""}]


@pytest.mark.parametrize(
    ("finish", "max_tokens", "expected"),
    [
        (Finish(StopReason.END_TURN, 1, 1), 10, "end_turn"),
        (Finish(StopReason.MAX_TOKENS, 1, 10), 10, "max_tokens"),
        (Finish(StopReason.MAX_TOKENS, 1, 4), 10, "model_context_window_exceeded"),
        (Finish(StopReason.STOP_SEQUENCE, 1, 3, "###"), 10, "stop_sequence"),
        (Finish(StopReason.TOOL_USE, 1, 3), 10, "tool_use"),
    ],
)
def test_stop_reasons(finish: Finish, max_tokens: int, expected: str) -> None:
    events = run([TokenEvent("x")], finish, max_tokens=max_tokens)
    assert events[-2] == ("messageStop", {"stopReason": expected})


def test_malformed_tool_use() -> None:
    events = run([ToolCallEvent("c", "t", '{"a": ')], Finish(StopReason.TOOL_USE, 1, 3))
    assert events[-2][1]["stopReason"] == "malformed_tool_use"
    # A call cut short by max_tokens is reported as max_tokens, with what arrived as `{}`.
    events = run(
        [ToolCallEvent("c", "t", '{"a": ')], Finish(StopReason.MAX_TOKENS, 1, 3), max_tokens=3
    )
    assert events[-2][1]["stopReason"] == "max_tokens"
    assert assemble_output(events)["output"]["message"]["content"][0]["toolUse"]["input"] == {}


def test_echoes_and_response_fields() -> None:
    events = run(
        [TokenEvent("x")],
        Finish(StopReason.STOP_SEQUENCE, 1, 1, "###"),
        response_fields={"stop_sequence": "###"},
        performance_config={"latency": "optimized"},
        service_tier={"type": "priority"},
    )
    assert events[-2][1] == {
        "stopReason": "stop_sequence",
        "additionalModelResponseFields": {"stop_sequence": "###"},
    }
    assert events[-1][1]["performanceConfig"] == {"latency": "optimized"}
    assert events[-1][1]["serviceTier"] == {"type": "priority"}
    body = assemble_output(events)
    assert list(body) == [
        "metrics",
        "output",
        "performanceConfig",
        "stopReason",
        "usage",
        "additionalModelResponseFields",
        "serviceTier",
    ]


def test_response_field_pointers() -> None:
    native = {"stop_sequence": "###", "usage": {"input_tokens": 3}, "content": [{"x": 1}], "a/b": 2}
    fields = response_fields(native, ["/stop_sequence", "/usage/input_tokens", "/missing", "/a~1b"])
    assert fields == {"stop_sequence": "###", "usage": {"input_tokens": 3}, "a/b": 2}
    assert response_fields(native, ["/content/0/x", "no-pointer"]) == {"content": {"0": {"x": 1}}}


def test_payloads_are_json_serialisable() -> None:
    events = run(
        [TokenEvent("é"), ToolCallEvent("c", "t", "{}")], Finish(StopReason.TOOL_USE, 1, 2)
    )
    for _, payload in events:
        json.dumps(payload)
