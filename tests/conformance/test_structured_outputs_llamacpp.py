"""Structured outputs on the real default engine (the embedded model on llama.cpp): answers
that parse and validate against their schema, through Converse and Claude's InvokeModel body.

A tiny base model writes poor values; the grammar guarantees the shape, which is what these
tests check. The schema keeps answers short (bounded strings and integers, enums).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tests.conformance.test_invoke_boto3 import client
from tests.conformance.test_structured_outputs_boto3 import QUESTION, SCHEMA, SONNET45
from tests.support.server import ServerProcess

pytestmark = pytest.mark.llamacpp


@pytest.fixture
def runtime(llama_server: ServerProcess) -> Any:
    return client(llama_server, read_timeout=300)


def test_converse_stream_answer_validates(runtime: Any) -> None:
    stream = runtime.converse_stream(
        modelId=SONNET45,
        messages=QUESTION,
        inferenceConfig={"maxTokens": 60, "temperature": 0},
        outputConfig={
            "textFormat": {
                "type": "json_schema",
                "structure": {"jsonSchema": {"name": "City", "schema": json.dumps(SCHEMA)}},
            }
        },
    )
    events = list(stream["stream"])
    text = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    )
    jsonschema.validate(json.loads(text), SCHEMA)
    assert [e["messageStop"]["stopReason"] for e in events if "messageStop" in e] == ["end_turn"]
    usage = next(e["metadata"]["usage"] for e in events if "metadata" in e)
    assert 0 < usage["outputTokens"] <= 60


def test_invoke_claude_output_config_validates(runtime: Any) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 60,
        "temperature": 0,
        "messages": [{"role": "user", "content": "Where is the Eiffel Tower?"}],
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    }
    answer = json.loads(
        runtime.invoke_model(modelId=SONNET45, body=json.dumps(body))["body"].read()
    )
    jsonschema.validate(json.loads(answer["content"][0]["text"]), SCHEMA)
    assert answer["stop_reason"] == "end_turn"
