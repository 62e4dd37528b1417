"""Model IDs newer than the catalog through the JS v3 SDK: a new Claude and a new Qwen ID
stream, and GetFoundationModel marks their metadata as inferred (docs/models.md)."""

from __future__ import annotations

import pytest

from tests.conformance.jsclient import run_js
from tests.conformance.test_model_ids_boto3 import strict_server  # noqa: F401 - fixture
from tests.support.server import ServerProcess

pytestmark = pytest.mark.node


def test_js_new_ids_stream(scripted_server: ServerProcess) -> None:
    claude = run_js(
        {
            "endpoint": scripted_server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": "us.anthropic.claude-opus-4-9",
            "body": {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 20,
                "messages": [{"role": "user", "content": "obsidian"}],
            },
        }
    )
    claude.ok()
    chunks = [e["data"] for e in claude.events if e["event"] == "chunk"]
    assert chunks[0]["message"]["model"] == "claude-opus-4-9"
    assert chunks[-1]["type"] == "message_stop"
    qwen = run_js(
        {
            "endpoint": scripted_server.url,
            "operation": "ConverseStream",
            "modelId": "qwen.qwen4-max-v1:0",
            "input": {"messages": [{"role": "user", "content": [{"text": "tuff"}]}]},
        }
    )
    qwen.ok()
    text = "".join(
        e["value"]["delta"]["text"] for e in qwen.events if e["event"] == "contentBlockDelta"
    )
    assert text == "Echo: tuff"


def test_js_get_foundation_model_marks_inferred(scripted_server: ServerProcess) -> None:
    run = run_js(
        {
            "endpoint": scripted_server.url,
            "service": "bedrock",
            "operation": "GetFoundationModel",
            "input": {"modelIdentifier": "qwen.qwen4-max-v1:0"},
        }
    )
    done = run.ok()
    details = done["output"]["modelDetails"]
    assert details["modelName"].endswith(" (inferred by Outcrop)")
    assert details["providerName"] == "Qwen"
    assert done["response"]["headers"]["x-outcrop-model-inferred"] == "true"


def test_js_strict_mode_refuses_new_ids(strict_server: ServerProcess) -> None:  # noqa: F811
    for model_id in ("us.anthropic.claude-opus-4-9", "qwen.qwen4-max-v1:0"):
        run = run_js(
            {
                "endpoint": strict_server.url,
                "operation": "ConverseStream",
                "modelId": model_id,
                "input": {"messages": [{"role": "user", "content": [{"text": "tuff"}]}]},
                "maxAttempts": 1,
            }
        )
        error = run.error
        assert error is not None
        assert error["name"] == "ValidationException"
        assert error["message"] == "The provided model identifier is invalid."
