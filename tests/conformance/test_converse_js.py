"""Converse, ConverseStream and CountTokens through the AWS SDK for JavaScript v3 (Node.js, its
default HTTP/2 handler and the HTTP/1.1 one) against `outcrop serve` on the scripted engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from tests.conformance.jsclient import run_js
from tests.support.converse_recordings import conforms, interactions, signature
from tests.support.server import ServerProcess, running_server

pytestmark = pytest.mark.node

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
}
TOOLS = {"tools": [{"toolSpec": {"name": "forecast", "inputSchema": {"json": SCHEMA}}}]}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server(["--engine", "scripted"]) as proc:
        yield proc


def call(server: ServerProcess, operation: str, handler: str = "http2", **members: Any) -> Any:
    return run_js(
        {
            "endpoint": server.url,
            "operation": operation,
            "modelId": HAIKU,
            "handler": handler,
            "maxAttempts": 1,
            "input": members,
        }
    )


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


@pytest.mark.parametrize("handler", ["http2", "http1"])
def test_converse_and_stream_agree(server: ServerProcess, handler: str) -> None:
    members = {"messages": [user("Hello from Node")], "inferenceConfig": {"maxTokens": 64}}
    done = call(server, "Converse", handler, **members).ok()
    output = done["output"]
    assert output["output"]["message"]["content"] == [{"text": "Echo: Hello from Node"}]
    assert output["stopReason"] == "end_turn"
    run = call(server, "ConverseStream", handler, **members)
    run.ok()
    kinds = [e["event"] for e in run.events]
    assert kinds[0] == "messageStart" and kinds[-3:] == [
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    text = "".join(
        e["value"]["delta"]["text"] for e in run.events if e["event"] == "contentBlockDelta"
    )
    assert text == "Echo: Hello from Node"
    metadata = run.events[-1]["value"]
    assert metadata["usage"] == output["usage"]
    recorded = dict(interactions("pydai__test_bedrock_model_stream.txt")[0].events)
    for event in run.events:
        conforms(signature(event["value"]), signature(recorded[event["event"]]), event["event"])


def test_tool_use_round_trip(server: ServerProcess) -> None:
    question = user("Forecast for Porto?")
    done = call(
        server,
        "Converse",
        messages=[question],
        toolConfig={**TOOLS, "toolChoice": {"tool": {"name": "forecast"}}},
    ).ok()
    message = done["output"]["output"]["message"]
    (block,) = message["content"]
    use = block["toolUse"]
    jsonschema.validate(use["input"], SCHEMA)
    assert done["output"]["stopReason"] == "tool_use"
    result = {
        "role": "user",
        "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "rain"}]}}],
    }
    answer = call(server, "Converse", messages=[question, message, result], toolConfig=TOOLS).ok()
    assert answer["output"]["output"]["message"]["content"] == [{"text": "Echo: rain"}]


def test_tool_use_stream(server: ServerProcess) -> None:
    run = call(server, "ConverseStream", messages=[user("Forecast?")], toolConfig=TOOLS)
    run.ok()
    starts = [e["value"] for e in run.events if e["event"] == "contentBlockStart"]
    assert [s["start"]["toolUse"]["name"] for s in starts] == ["forecast"]
    fragments = [
        e["value"]["delta"]["toolUse"]["input"]
        for e in run.events
        if e["event"] == "contentBlockDelta"
    ]
    jsonschema.validate(json.loads("".join(fragments)), SCHEMA)
    assert run.events[-2]["value"] == {"stopReason": "tool_use"}


def test_validation_error(server: ServerProcess) -> None:
    run = call(server, "Converse", messages=[user("a"), user("b")])
    error = run.error
    assert error is not None
    assert error["name"] == "ValidationException"
    assert error["$fault"] == "client"
    assert error["$metadata"]["httpStatusCode"] == 400
    assert error["message"].startswith("A conversation must alternate between user and assistant")


def test_count_tokens_matches_usage(server: ServerProcess) -> None:
    conversation: dict[str, Any] = {
        "messages": [user("How many tokens is this?")],
        "toolConfig": TOOLS,
    }
    counted = call(server, "CountTokens", input={"converse": conversation}).ok()
    usage = call(server, "Converse", **conversation).ok()["output"]["usage"]
    assert counted["output"]["inputTokens"] == usage["inputTokens"] > 0
