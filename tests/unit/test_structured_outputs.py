"""Structured outputs: each request form becomes `response_schema`, refusals for models without
the feature, the scripted engine's schema-valid JSON and the grammar the llama.cpp engine uses."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from outcrop.dialects.anthropic import AnthropicDialect
from outcrop.dialects.base import InvokeCall
from outcrop.dialects.converse import parse_request
from outcrop.dialects.openai import GptOssDialect
from outcrop.dialects.structured import (
    CLAUDE_REFUSAL,
    CONVERSE_REFUSAL,
    check_supported,
    supports_structured_output,
)
from outcrop.engines.openai_compat import request_body
from outcrop.engines.response_format import schema_prompt_request
from outcrop.engines.scripted import ScriptedEngine
from outcrop.engines.tool_grammar import grammar_for
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationRequest,
    SamplingParams,
    StopReason,
    TokenEvent,
    ToolSpec,
)
from outcrop.wire.errors import ValidationException

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 5},
        "country": {"type": "string", "enum": ["France", "Peru"]},
        "population": {"type": "integer", "minimum": 0, "maximum": 20},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
    },
    "required": ["city", "country", "population", "tags"],
    "additionalProperties": False,
}
SONNET45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
HAIKU3 = "anthropic.claude-3-haiku-20240307-v1:0"


def claude_body(**extra: Any) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "Where is the Eiffel Tower?"}],
        **extra,
    }


def test_claude_output_config() -> None:
    body = claude_body(output_config={"format": {"type": "json_schema", "schema": SCHEMA}})
    parsed = AnthropicDialect().parse(body, InvokeCall("r", SONNET45))
    assert parsed.request.response_schema == SCHEMA
    with pytest.raises(ValidationException) as refused:
        AnthropicDialect().parse(body, InvokeCall("r", HAIKU3))
    assert refused.value.message == CLAUDE_REFUSAL
    with pytest.raises(ValidationException):
        AnthropicDialect().parse(
            claude_body(output_config={"format": {"type": "xml"}}), InvokeCall("r", SONNET45)
        )
    plain = AnthropicDialect().parse(claude_body(), InvokeCall("r", SONNET45))
    assert plain.request.response_schema is None


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "json_schema", "json_schema": {"name": "City", "schema": SCHEMA}}, SCHEMA),
        ({"type": "json_object"}, {"type": "object"}),
        ({"type": "text"}, None),
    ],
)
def test_response_format_of_open_weight_bodies(
    response_format: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "response_format": response_format}
    for model_id in ("openai.gpt-oss-20b-1:0", "qwen.qwen3-32b-v1:0"):
        parsed = GptOssDialect().parse(body, InvokeCall("r", model_id))
        assert parsed.request.response_schema == expected


def test_response_format_refusals() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "yaml"}}
    with pytest.raises(ValidationException):
        GptOssDialect().parse(body, InvokeCall("r", "openai.gpt-oss-20b-1:0"))


def test_converse_forms() -> None:
    messages = [{"role": "user", "content": [{"text": "Where is the Eiffel Tower?"}]}]
    text_format = {
        "type": "json_schema",
        "structure": {"jsonSchema": {"name": "City", "schema": json.dumps(SCHEMA)}},
    }
    parsed = parse_request({"messages": messages, "outputConfig": {"textFormat": text_format}})
    assert parsed.request.response_schema == SCHEMA
    tunneled = parse_request(
        {
            "messages": messages,
            "additionalModelRequestFields": {
                "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}
            },
        }
    )
    assert tunneled.request.response_schema == SCHEMA
    bad = {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{not json"}}}
    with pytest.raises(ValidationException):
        parse_request({"messages": messages, "outputConfig": {"textFormat": bad}})


def test_which_models_offer_it() -> None:
    for model_id in (
        SONNET45,
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        "anthropic.claude-opus-4-6-v1",
        "anthropic.claude-sonnet-5-5",
        "openai.gpt-oss-120b-1:0",
        "qwen.qwen3-coder-480b-a35b-v1:0",
        "zai.glm-4.7-flash",
        "deepseek.v3.2",
    ):
        assert supports_structured_output(model_id), model_id
    for model_id in (
        HAIKU3,
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "anthropic.claude-opus-4-1-20250805-v1:0",
        "amazon.titan-text-express-v1",
        "meta.llama3-8b-instruct-v1:0",
    ):
        assert not supports_structured_output(model_id), model_id
    with pytest.raises(ValidationException) as refused:
        check_supported("meta.llama3-8b-instruct-v1:0", SCHEMA)
    assert refused.value.message == CONVERSE_REFUSAL
    check_supported("meta.llama3-8b-instruct-v1:0", None)


def request(schema: dict[str, Any] | None, **extra: Any) -> GenerationRequest:
    return GenerationRequest(
        (ChatMessage("user", "Where is the Eiffel Tower?"),),
        SamplingParams(max_tokens=200),
        response_schema=schema,
        **extra,
    )


async def answer(engine: ScriptedEngine, req: GenerationRequest) -> tuple[str, Finish]:
    text = ""
    finish = None
    async for event in engine.generate(req):
        if isinstance(event, TokenEvent):
            text += event.text
        elif isinstance(event, Finish):
            finish = event
    assert finish is not None
    return text, finish


async def test_scripted_answers_schema_valid_json_deterministically() -> None:
    engine = ScriptedEngine()
    first, finish = await answer(engine, request(SCHEMA))
    jsonschema.validate(json.loads(first), SCHEMA)
    assert finish.stop_reason is StopReason.END_TURN
    assert finish.output_tokens > 0
    assert (await answer(engine, request(SCHEMA)))[0] == first
    assert (await answer(engine, request(None)))[0] == "Echo: Where is the Eiffel Tower?"


def test_grammar_for_a_schema() -> None:
    grammar = grammar_for(request(SCHEMA))
    assert grammar is not None
    assert not grammar.tool_calls and not grammar.allows_text
    assert grammar.gbnf.startswith("root ::= ")
    assert 'space ::= | " "' in grammar.gbnf.splitlines()
    assert '"\\"France\\""' in grammar.gbnf
    assert grammar_for(request(None)) is None
    # offered tools take precedence: the turn may call one
    tools = (ToolSpec("lookup", "", {"type": "object"}),)
    with_tools = grammar_for(request(SCHEMA, tools=tools))
    assert with_tools is not None and with_tools.tool_calls


def test_schema_is_described_to_local_models() -> None:
    described = schema_prompt_request(request(SCHEMA))
    assert described.messages[0].role == "system"
    assert json.dumps(SCHEMA) in described.messages[0].text
    assert schema_prompt_request(request(None)) == request(None)


def test_openai_engine_sends_response_format() -> None:
    body = request_body(request(SCHEMA), "m")
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA, "strict": True},
    }
    assert "response_format" not in request_body(request(None), "m")
