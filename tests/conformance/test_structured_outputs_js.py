"""Structured outputs through the JS v3 SDK: Converse `outputConfig.textFormat`, Claude's
`output_config` on InvokeModel, and the refusal for a model without the feature."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tests.conformance.jsclient import run_js
from tests.conformance.test_structured_outputs_boto3 import HAIKU3, QUESTION, SCHEMA, SONNET45
from tests.support.server import ServerProcess

pytestmark = pytest.mark.node

TEXT_FORMAT: dict[str, Any] = {
    "textFormat": {
        "type": "json_schema",
        "structure": {"jsonSchema": {"name": "City", "schema": json.dumps(SCHEMA)}},
    }
}


def test_js_converse_stream_output_config(scripted_server: ServerProcess) -> None:
    run = run_js(
        {
            "endpoint": scripted_server.url,
            "operation": "ConverseStream",
            "modelId": SONNET45,
            "input": {"messages": QUESTION, "outputConfig": TEXT_FORMAT},
        }
    )
    run.ok()
    text = "".join(
        e["value"]["delta"]["text"] for e in run.events if e["event"] == "contentBlockDelta"
    )
    jsonschema.validate(json.loads(text), SCHEMA)
    stops = [e["value"]["stopReason"] for e in run.events if e["event"] == "messageStop"]
    assert stops == ["end_turn"]


def test_js_invoke_claude_output_config(scripted_server: ServerProcess) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Where is the Eiffel Tower?"}],
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    }
    run = run_js(
        {
            "endpoint": scripted_server.url,
            "operation": "InvokeModel",
            "modelId": SONNET45,
            "body": body,
        }
    )
    answer = run.ok()["output"]["body"]
    jsonschema.validate(json.loads(answer["content"][0]["text"]), SCHEMA)
    refused = run_js(
        {
            "endpoint": scripted_server.url,
            "operation": "InvokeModel",
            "modelId": HAIKU3,
            "body": body,
            "maxAttempts": 1,
        }
    )
    assert refused.error is not None
    assert refused.error["name"] == "ValidationException"
    assert refused.error["message"] == (
        "The model returned the following errors: output_config.format: Extra inputs are not "
        "permitted"
    )
