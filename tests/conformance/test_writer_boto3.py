"""Writer Palmyra X4 and X5 on InvokeModel and its stream, with boto3 and the JS v3 SDK."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.conformance.jsclient import run_js
from tests.support.server import ServerProcess

X5 = "us.writer.palmyra-x5-v1:0"
X4 = "writer.palmyra-x4-v1:0"
BODY = {"messages": [{"role": "user", "content": {"text": "basalt"}}], "max_tokens": 50}


def runtime(server: ServerProcess) -> Any:
    return boto3.client("bedrock-runtime", endpoint_url=server.url, region_name="us-east-1")


def test_invoke_palmyra(scripted_server: ServerProcess) -> None:
    rt = runtime(scripted_server)
    answer = json.loads(rt.invoke_model(modelId=X5, body=json.dumps(BODY))["body"].read())
    assert answer["object"] == "chat.completion"
    assert answer["model"] == "writer.palmyra-x5-v1:0"
    assert answer["choices"][0]["message"]["content"] == "Echo: basalt"
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] > 0
    # the documented default max_tokens is 16
    long = {"messages": [{"role": "user", "content": " ".join(["word"] * 30)}]}
    cut = json.loads(rt.invoke_model(modelId=f"us.{X4}", body=json.dumps(long))["body"].read())
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 16


def test_stream_palmyra(scripted_server: ServerProcess) -> None:
    stream = runtime(scripted_server).invoke_model_with_response_stream(
        modelId=X5, body=json.dumps(BODY)
    )
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Echo: basalt"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] > 0


def test_malformed_palmyra_body(scripted_server: ServerProcess) -> None:
    with pytest.raises(ClientError) as raised:
        runtime(scripted_server).invoke_model(
            modelId=X5, body=json.dumps({**BODY, "temperature": 5})
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "#/temperature" in raised.value.response["Error"]["Message"]


@pytest.mark.node
def test_js_palmyra_stream(scripted_server: ServerProcess) -> None:
    run = run_js(
        {
            "endpoint": scripted_server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": X5,
            "body": BODY,
        }
    )
    run.ok()
    chunks = [e["data"] for e in run.events if e["event"] == "chunk"]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Echo: basalt"
    done = run_js(
        {"endpoint": scripted_server.url, "operation": "InvokeModel", "modelId": X4, "body": BODY}
    )
    # writer.palmyra-x4 is served through profiles only, as on Bedrock
    assert done.error is not None and done.error["name"] == "ValidationException"
