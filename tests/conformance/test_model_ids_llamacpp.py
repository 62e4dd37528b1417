"""Model IDs newer than the catalog on the real default engine (the embedded model on
llama.cpp): a new Claude ID and a new Qwen ID stream real tokens in their provider's format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conformance.test_invoke_boto3 import client
from tests.support.server import ServerProcess

pytestmark = pytest.mark.llamacpp


@pytest.fixture
def runtime(llama_server: ServerProcess) -> Any:
    return client(llama_server, read_timeout=300)


def test_new_claude_id_streams(runtime: Any) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "Name a rock."}],
    }
    stream = runtime.invoke_model_with_response_stream(
        modelId="global.anthropic.claude-sonnet-5-5", body=json.dumps(body)
    )
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
    assert chunks[0]["message"]["model"] == "claude-sonnet-5-5"
    text = "".join(c["delta"].get("text", "") for c in chunks if c["type"] == "content_block_delta")
    assert text.strip()
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert 0 < metrics["outputTokenCount"] <= 8


def test_new_qwen_id_streams(runtime: Any) -> None:
    body = {"messages": [{"role": "user", "content": "Name a rock."}], "max_tokens": 8}
    stream = runtime.invoke_model_with_response_stream(
        modelId="qwen.qwen4-coder-999b-a35b-v1:0", body=json.dumps(body)
    )
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.strip()
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert 0 < chunks[-1]["usage"]["completion_tokens"] <= 8
