"""Every model family's body against `outcrop serve` on the real embedded model (llama-server,
SmolLM2-135M-Instruct on the CPU) with small max tokens, called with boto3: the stream's text,
stop reason and usage equal the non-streaming answer's for the same prompt (same default seed)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conformance.dialect_cases import FAMILIES, Family
from tests.support.server import ServerProcess

pytestmark = pytest.mark.llamacpp

MAX_TOKENS = 12


def client(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, read_timeout=300),
    )


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_real_model_stream_agrees_with_invoke(llama_server: ServerProcess, family: Family) -> None:
    bedrock = client(llama_server)
    body = json.dumps(family.body(MAX_TOKENS))
    response = bedrock.invoke_model(modelId=family.model_id, body=body)
    answer = json.loads(response["body"].read())
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    streamed = bedrock.invoke_model_with_response_stream(modelId=family.model_id, body=body)
    objects = [json.loads(event["chunk"]["bytes"]) for event in streamed["body"]]

    text = family.text(answer)
    # An instruct model may end a plain raw prompt (no chat template) at once.
    assert text.strip() or family.stop(answer) == family.natural, answer
    assert family.stream_text(objects) == text
    assert family.stop(answer) == family.stream_stop(objects)
    assert family.stop(answer) in (family.natural, family.length)
    metrics = objects[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] == int(headers["x-amzn-bedrock-input-token-count"])
    assert metrics["outputTokenCount"] == int(headers["x-amzn-bedrock-output-token-count"])
    assert 0 < metrics["outputTokenCount"] <= MAX_TOKENS
