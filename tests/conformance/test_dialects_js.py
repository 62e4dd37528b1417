"""Every model family's InvokeModel / InvokeModelWithResponseStream body through the official
AWS SDK for JavaScript v3 (Node, its default HTTP/2-capable handler) against `outcrop serve`
(scripted engine) started as a process: the answer, stop reason and usage the SDK hands to an
application, stream equal to invoke, tool-use and thinking streams, and Bedrock's validation
errors as SDK exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.dialect_cases import FAMILIES, Family, server_config
from tests.conformance.jsclient import node_or_skip, run_js
from tests.support.server import ServerProcess, running_server

pytestmark = pytest.mark.node

Obj = dict[str, Any]
METRICS = "amazon-bedrock-invocationMetrics"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    node_or_skip()
    config = tmp_path_factory.mktemp("cfg") / "outcrop.toml"
    config.write_text(server_config())
    with running_server(["--config", str(config)]) as proc:
        yield proc


# The JS SDK sends `Content-Type: application/octet-stream` unless `contentType` is set; AWS's
# JS examples set it to application/json, as these calls do.
JSON = "application/json"


def js_invoke(server: ServerProcess, model_id: str, body: Obj) -> tuple[Obj, Obj]:
    run = run_js(
        {
            "endpoint": server.url,
            "operation": "InvokeModel",
            "modelId": model_id,
            "body": body,
            "contentType": JSON,
        }
    )
    done = run.ok()
    assert done["output"]["contentType"] == "application/json"
    answer: Obj = done["output"]["body"]  # the harness parses a JSON body
    return answer, done["response"]["headers"]


def js_stream(server: ServerProcess, model_id: str, body: Obj) -> list[Obj]:
    run = run_js(
        {
            "endpoint": server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": model_id,
            "body": body,
            "contentType": JSON,
        }
    )
    run.ok()
    assert all(event["event"] == "chunk" for event in run.events)
    return [event["data"] for event in run.events]


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_js_sdk_streams_what_it_invokes(server: ServerProcess, family: Family) -> None:
    body, headers = js_invoke(server, family.model_id, family.body(400))
    objects = js_stream(server, family.model_id, family.body(400))
    assert family.text(body)
    assert family.stream_text(objects) == family.text(body)
    assert family.stop(body) == family.natural == family.stream_stop(objects)
    metrics = objects[-1][METRICS]
    assert metrics["inputTokenCount"] == int(headers["x-amzn-bedrock-input-token-count"])
    assert metrics["outputTokenCount"] == int(headers["x-amzn-bedrock-output-token-count"])


def test_js_sdk_claude_tool_use_and_thinking_streams(server: ServerProcess) -> None:
    tools = [{"name": "lookup", "description": "", "input_schema": {"type": "object"}}]
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 2000,
        "messages": [{"role": "user", "content": "Look it up"}],
        "tools": tools,
        "tool_choice": {"type": "tool", "name": "lookup"},
    }
    objects = js_stream(server, "anthropic.claude-3-5-haiku-20241022-v1:0", body)
    assert [o["type"] for o in objects] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [o["delta"]["partial_json"] for o in objects[2:5]] == ["", "{", "}"]
    assert objects[-2]["delta"]["stop_reason"] == "tool_use"

    del body["tool_choice"], body["tools"]
    body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    objects = js_stream(server, "us.anthropic.claude-3-7-sonnet-20250219-v1:0", body)
    deltas = [o["delta"]["type"] for o in objects if o["type"] == "content_block_delta"]
    assert deltas[0] == "thinking_delta" and "signature_delta" in deltas
    assert deltas[-1] == "text_delta"


@pytest.mark.parametrize("operation", ["InvokeModel", "InvokeModelWithResponseStream"])
def test_js_sdk_gets_bedrock_validation_errors(server: ServerProcess, operation: str) -> None:
    run = run_js(
        {
            "endpoint": server.url,
            "operation": operation,
            "modelId": "amazon.nova-micro-v1:0",
            "body": {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "max_tokens": 5},
            "contentType": JSON,
        }
    )
    error = run.error
    assert error is not None
    assert error["name"] == "ValidationException"
    assert error["$metadata"]["httpStatusCode"] == 400
    assert error["message"] == (
        "Malformed input request: #: extraneous key [max_tokens] is not permitted, please "
        "reformat your input and try again."
    )
