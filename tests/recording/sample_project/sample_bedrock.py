"""A user's Bedrock tests, as they would write them: boto3 calls through the plugin's client.

Each test writes what its calls returned to `$SAMPLE_OUT/<Class.>test.json`, so that the test
running this project can compare a recording run with a replaying one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CLAUDE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "Name a colour."}],
}


def save(request: pytest.FixtureRequest, result: Any) -> None:
    out = Path(os.environ["SAMPLE_OUT"])
    out.mkdir(parents=True, exist_ok=True)
    name = request.node.nodeid.split("::", 1)[1].replace("::", ".")
    (out / f"{name}.json").write_text(json.dumps(result, sort_keys=True))


def converse_messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def test_converse(outcrop_bedrock_runtime: Any, request: pytest.FixtureRequest) -> None:
    reply = outcrop_bedrock_runtime.converse(
        modelId=MODEL, messages=converse_messages("Say hello."), inferenceConfig={"maxTokens": 8}
    )
    save(request, [reply["output"], reply["usage"], reply["stopReason"]])
    assert reply["output"]["message"]["content"][0]["text"]


def test_converse_stream(outcrop_bedrock_runtime: Any, request: pytest.FixtureRequest) -> None:
    reply = outcrop_bedrock_runtime.converse_stream(
        modelId=MODEL,
        messages=converse_messages("Count to three."),
        inferenceConfig={"maxTokens": 8},
    )
    events = list(reply["stream"])
    for event in events:  # metadata's latencyMs is measured per call (by real Bedrock as well)
        event.get("metadata", {}).pop("metrics", None)
    save(request, events)
    assert any("messageStop" in event for event in events)


def test_invoke_model(outcrop_bedrock_runtime: Any, request: pytest.FixtureRequest) -> None:
    reply = outcrop_bedrock_runtime.invoke_model(modelId=MODEL, body=json.dumps(CLAUDE_BODY))
    body = json.loads(reply["body"].read())
    save(request, {"content": body["content"], "usage": body["usage"]})
    assert body["content"][0]["text"]


def test_invoke_model_stream(outcrop_bedrock_runtime: Any, request: pytest.FixtureRequest) -> None:
    reply = outcrop_bedrock_runtime.invoke_model_with_response_stream(
        modelId=MODEL, body=json.dumps(CLAUDE_BODY)
    )
    chunks = [json.loads(event["chunk"]["bytes"]) for event in reply["body"]]
    for chunk in chunks:
        chunk.pop("amazon-bedrock-invocationMetrics", None)  # latencies, measured per call
        chunk.get("message", {}).pop("id", None)
    save(request, chunks)
    assert chunks[-1]["type"] == "message_stop"


def test_recorded_error(outcrop_bedrock_runtime: Any, request: pytest.FixtureRequest) -> None:
    with pytest.raises(ClientError) as caught:
        outcrop_bedrock_runtime.converse(
            modelId="no.such-model-v1:0", messages=converse_messages("Hello?")
        )
    error = caught.value.response["Error"]
    save(request, [caught.value.response["ResponseMetadata"]["HTTPStatusCode"], error])
    assert error["Code"] == "ValidationException"


@pytest.mark.outcrop_cassette("shared-greetings")
def test_own_client_first(request: pytest.FixtureRequest) -> None:
    """No fixture asked for: the marker selects the cassette and the plugin points the SDK's
    environment (AWS_ENDPOINT_URL_BEDROCK_RUNTIME) at the server."""
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", config=Config(retries={"max_attempts": 1})
    )
    reply = client.converse(modelId=MODEL, messages=converse_messages("Greet me in French."))
    save(request, reply["output"])


@pytest.mark.outcrop_cassette("shared-greetings")
def test_own_client_second(outcrop_endpoint: str, request: pytest.FixtureRequest) -> None:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=outcrop_endpoint,
        config=Config(retries={"max_attempts": 1}),
    )
    reply = client.converse(modelId=MODEL, messages=converse_messages("Greet me in German."))
    save(request, reply["output"])


class TestInAClass:
    def test_converse(self, outcrop_bedrock_runtime: Any, request: pytest.FixtureRequest) -> None:
        reply = outcrop_bedrock_runtime.converse(
            modelId=MODEL,
            messages=converse_messages("Say goodbye."),
            inferenceConfig={"maxTokens": 8},
        )
        save(request, reply["output"])
