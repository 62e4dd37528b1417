"""The real embedded model (Gemma 3 270M on llama.cpp, in-process) through `outcrop serve`,
called with boto3: invoke and stream agree, concurrency does not mix outputs, and a client
that goes away stops its generation."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.support.server import ServerProcess

pytestmark = pytest.mark.llamacpp

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def client(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, read_timeout=300, max_pool_connections=8),
    )


def claude(text: str, max_tokens: int = 12, **extra: Any) -> str:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "temperature": 0,
            "messages": [{"role": "user", "content": text}],
            **extra,
        }
    )


def streamed(rt: Any, body: str) -> tuple[str, list[dict[str, Any]]]:
    response = rt.invoke_model_with_response_stream(modelId=HAIKU, body=body)
    objects = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    text = "".join(o["delta"]["text"] for o in objects if o["type"] == "content_block_delta")
    return text, objects


def test_real_model_invoke_and_stream_agree(llama_server: ServerProcess) -> None:
    rt = client(llama_server)
    body = claude("Write one sentence about granite.")
    response = rt.invoke_model(modelId=HAIKU, body=body)
    whole = json.loads(response["body"].read())
    text = whole["content"][0]["text"]
    assert text.strip()
    assert whole["usage"]["output_tokens"] == 12 and whole["stop_reason"] == "max_tokens"
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert int(headers["x-amzn-bedrock-input-token-count"]) == whole["usage"]["input_tokens"] > 5

    stream_text, objects = streamed(rt, body)
    assert stream_text == text
    metrics = objects[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] == whole["usage"]["input_tokens"]
    assert metrics["outputTokenCount"] == whole["usage"]["output_tokens"]
    assert objects[0]["message"]["usage"]["input_tokens"] == whole["usage"]["input_tokens"]
    assert 0 < metrics["firstByteLatency"] <= metrics["invocationLatency"]


def test_concurrent_requests_match_their_solo_outputs(llama_server: ServerProcess) -> None:
    rt = client(llama_server)
    prompts = ["Name a rock.", "Name a mineral.", "Name a volcano."]
    solo = {p: streamed(rt, claude(p, 8))[0] for p in prompts}
    together: dict[str, str] = {}

    def run(p: str) -> None:
        together[p] = streamed(rt, claude(p, 8))[0]

    threads = [threading.Thread(target=run, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == solo


def test_disconnect_stops_generation(llama_server: ServerProcess) -> None:
    rt = client(llama_server)

    def engine_stats() -> dict[str, Any]:
        engines = llama_server.health()[1]["engines"]
        assert isinstance(engines, dict)
        return dict(engines["default"])

    before = engine_stats()
    response = rt.invoke_model_with_response_stream(
        modelId=HAIKU, body=claude("Tell a story.", 3000)
    )
    events = iter(response["body"])
    for _ in range(4):
        next(events)
    response["body"].close()
    deadline = time.monotonic() + 30
    while engine_stats()["aborted"] == before["aborted"]:
        assert time.monotonic() < deadline, "generation was not aborted"
        time.sleep(0.1)
    after = engine_stats()
    assert after["generated_tokens"] - before["generated_tokens"] < 500
    # and the model serves the next request
    ok = json.loads(rt.invoke_model(modelId=HAIKU, body=claude("Hi", 3))["body"].read())
    assert ok["usage"]["output_tokens"] == 3
