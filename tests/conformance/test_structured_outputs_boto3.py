"""Structured outputs through boto3 in every form Bedrock takes, on the scripted engine (whose
answer is the schema's example JSON) and the refusals for models without the feature
(docs/structured-outputs.md). The real model's answers: test_structured_outputs_llamacpp.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import jsonschema
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.server import ServerProcess

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "country": {"type": "string", "enum": ["France", "Peru", "Japan"]},
        "visitors": {"type": "integer", "minimum": 0, "maximum": 9},
    },
    "required": ["city", "country", "visitors"],
    "additionalProperties": False,
}
SONNET45 = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
HAIKU3 = "anthropic.claude-3-haiku-20240307-v1:0"
QUESTION = [{"role": "user", "content": [{"text": "Where is the Eiffel Tower?"}]}]
TEXT_FORMAT = {
    "textFormat": {
        "type": "json_schema",
        "structure": {"jsonSchema": {"name": "City", "schema": json.dumps(SCHEMA)}},
    }
}


@pytest.fixture
def runtime(scripted_server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=scripted_server.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def valid(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    jsonschema.validate(value, SCHEMA)
    return value


def test_converse_output_config(runtime: Any) -> None:
    for model_id in (SONNET45, "qwen.qwen3-32b-v1:0", "zai.glm-4.7-flash"):
        answer = runtime.converse(modelId=model_id, messages=QUESTION, outputConfig=TEXT_FORMAT)
        valid(answer["output"]["message"]["content"][0]["text"])
        assert answer["stopReason"] == "end_turn"
        assert answer["usage"]["outputTokens"] > 0
    stream = runtime.converse_stream(modelId=SONNET45, messages=QUESTION, outputConfig=TEXT_FORMAT)
    events = list(stream["stream"])
    text = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    )
    valid(text)
    assert [e["messageStop"]["stopReason"] for e in events if "messageStop" in e] == ["end_turn"]
    usage = next(e["metadata"]["usage"] for e in events if "metadata" in e)
    assert usage["outputTokens"] == answer["usage"]["outputTokens"]


def test_converse_claude_output_config_in_additional_fields(runtime: Any) -> None:
    """The Vercel AI SDK's `generateObject` on Claude sends Anthropic's own field."""
    answer = runtime.converse(
        modelId=SONNET45,
        messages=QUESTION,
        additionalModelRequestFields={
            "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}
        },
    )
    valid(answer["output"]["message"]["content"][0]["text"])


def test_invoke_claude_output_config(runtime: Any) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Where is the Eiffel Tower?"}],
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    }
    answer = json.loads(
        runtime.invoke_model(modelId=SONNET45, body=json.dumps(body))["body"].read()
    )
    valid(answer["content"][0]["text"])
    assert answer["stop_reason"] == "end_turn"
    stream = runtime.invoke_model_with_response_stream(modelId=SONNET45, body=json.dumps(body))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
    valid("".join(c["delta"].get("text", "") for c in chunks if c["type"] == "content_block_delta"))


@pytest.mark.parametrize("model_id", ["openai.gpt-oss-20b-1:0", "qwen.qwen3-32b-v1:0"])
def test_invoke_response_format(runtime: Any, model_id: str) -> None:
    body = {
        "messages": [{"role": "user", "content": "Where is the Eiffel Tower?"}],
        "max_tokens": 100,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "City", "schema": SCHEMA, "strict": True},
        },
    }
    answer = json.loads(
        runtime.invoke_model(modelId=model_id, body=json.dumps(body))["body"].read()
    )
    content = answer["choices"][0]["message"]["content"]
    # gpt-oss always reasons; on InvokeModel its reasoning leads the content in tags.
    valid(content.split("</reasoning>")[-1])
    assert answer["choices"][0]["finish_reason"] == "stop"


def test_models_without_structured_outputs_are_refused(runtime: Any) -> None:
    cases: list[tuple[Callable[[], object], str]] = [
        (
            lambda: runtime.converse(modelId=HAIKU3, messages=QUESTION, outputConfig=TEXT_FORMAT),
            "The model returned the following errors: output_config.format: Extra inputs are not "
            "permitted",
        ),
        (
            lambda: runtime.invoke_model(
                modelId=HAIKU3,
                body=json.dumps(
                    {
                        "anthropic_version": "bedrock-2023-05-31",
                        "max_tokens": 10,
                        "messages": [{"role": "user", "content": "x"}],
                        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
                    }
                ),
            ),
            "The model returned the following errors: output_config.format: Extra inputs are not "
            "permitted",
        ),
        (
            lambda: runtime.converse(
                modelId="meta.llama3-8b-instruct-v1:0", messages=QUESTION, outputConfig=TEXT_FORMAT
            ),
            "This model doesn't support structured output.",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ClientError) as raised:
            call()
        assert raised.value.response["Error"] == {"Code": "ValidationException", "Message": message}
