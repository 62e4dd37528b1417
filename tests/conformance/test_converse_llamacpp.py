"""Tool use end to end through Converse with the real local model (the embedded Gemma 3 270M
on llama.cpp), driven by boto3 against `outcrop serve`: the model calls a tool with input that
validates against the tool's schema, the application returns a toolResult, the model answers.

A 270M base model answers poorly; these tests assert on the protocol and on schema validity.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import jsonschema
import pytest
from botocore.config import Config

from tests.support.server import ServerProcess

pytestmark = pytest.mark.llamacpp

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
FORECAST_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["city", "unit", "days"],
}
CLOCK_SCHEMA = {
    "type": "object",
    "properties": {"timezone": {"type": "string"}},
    "required": ["timezone"],
}
TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "forecast",
                "description": "Weather forecast for a city",
                "inputSchema": {"json": FORECAST_SCHEMA},
            }
        },
        {
            "toolSpec": {
                "name": "clock",
                "description": "Current time in a timezone",
                "inputSchema": {"json": CLOCK_SCHEMA},
            }
        },
    ]
}
GREEDY = {"maxTokens": 80, "temperature": 0}


@pytest.fixture
def bedrock(llama_server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=llama_server.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, read_timeout=300),
    )


def question() -> dict[str, Any]:
    return {"role": "user", "content": [{"text": "What will the weather be in Lisbon?"}]}


def test_tool_call_round_trip(bedrock: Any) -> None:
    request = {
        "modelId": MODEL,
        "messages": [question()],
        "toolConfig": {**TOOLS, "toolChoice": {"any": {}}},
        "inferenceConfig": GREEDY,
    }
    response = bedrock.converse(**request)
    assert response["stopReason"] == "tool_use"
    message = response["output"]["message"]
    (block,) = message["content"]
    use = block["toolUse"]
    schemas = {"forecast": FORECAST_SCHEMA, "clock": CLOCK_SCHEMA}
    jsonschema.validate(use["input"], schemas[use["name"]])
    assert use["toolUseId"].startswith("tooluse_")

    counted = bedrock.count_tokens(
        modelId=MODEL,
        input={"converse": {"messages": request["messages"], "toolConfig": request["toolConfig"]}},
    )
    assert counted["inputTokens"] == response["usage"]["inputTokens"]

    result = {
        "role": "user",
        "content": [
            {
                "toolResult": {
                    "toolUseId": use["toolUseId"],
                    "content": [{"json": {"forecast": "sunny", "high_celsius": 24}}],
                }
            }
        ],
    }
    followup = bedrock.converse(
        modelId=MODEL,
        messages=[question(), message, result],
        toolConfig=TOOLS,
        inferenceConfig={"maxTokens": 30, "temperature": 0},
    )
    assert followup["stopReason"] in ("end_turn", "max_tokens")
    (answer,) = followup["output"]["message"]["content"]
    assert answer["text"].strip()
    assert followup["usage"]["inputTokens"] > response["usage"]["inputTokens"]


def test_forced_tool_streams_schema_valid_fragments(bedrock: Any) -> None:
    request = {
        "modelId": MODEL,
        "messages": [{"role": "user", "content": [{"text": "What time is it in Tokyo?"}]}],
        "toolConfig": {**TOOLS, "toolChoice": {"tool": {"name": "clock"}}},
        "inferenceConfig": GREEDY,
    }
    events = [
        (kind, payload)
        for event in bedrock.converse_stream(**request)["stream"]
        for kind, payload in event.items()
    ]
    kinds = [kind for kind, _ in events]
    assert kinds[:2] == ["messageStart", "contentBlockStart"]
    assert kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    assert events[1][1]["start"]["toolUse"]["name"] == "clock"
    fragments = [p["delta"]["toolUse"]["input"] for k, p in events if k == "contentBlockDelta"]
    assert len([f for f in fragments if f]) > 1  # streamed in pieces, as Bedrock does
    jsonschema.validate(json.loads("".join(fragments)), CLOCK_SCHEMA)
    assert events[-2][1] == {"stopReason": "tool_use"}
    # The non-streaming answer to the same request is the same call.
    response = bedrock.converse(**request)
    (block,) = response["output"]["message"]["content"]
    assert block["toolUse"]["input"] == json.loads("".join(fragments))
    assert response["usage"] == events[-1][1]["usage"]
