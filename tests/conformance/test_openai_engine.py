"""`outcrop serve --engine openai` in front of a real OpenAI-compatible server
(llama.cpp's own `llama-server`, started directly on the embedded default GGUF), called with
boto3.

The tests share one upstream and one Outcrop, and pass in any order: the health seen before the
upstream was up is kept from the start, an answer depends on its request alone, and the upstream
going away is tested on a stack of its own.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from outcrop.engines import llama_build
from outcrop.engines.default_model import resolve_model
from outcrop.engines.llama_server import LlamaServerOptions
from tests.support.server import ServerProcess, free_port, running_server

pytestmark = pytest.mark.llamacpp

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


@dataclass
class Stack:
    outcrop: ServerProcess
    upstream: subprocess.Popen[bytes]
    health_before_upstream: tuple[int, dict[str, object]]


def _wait_healthy(server: ServerProcess, upstream: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while server.health()[0] != 200:
        if upstream.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"upstream never served:\n{log.read_text()}\n{server.log()}")
        time.sleep(0.2)


@contextmanager
def running_stack(workdir: Path) -> Iterator[Stack]:
    """Outcrop on `--engine openai`, then its upstream: llama-server on the embedded default
    GGUF, without its prompt cache, so that an answer depends on its request alone."""
    port = free_port()
    upstream_url = f"http://127.0.0.1:{port}/v1"
    args = ["--engine", "openai", "--upstream", upstream_url]
    with running_server(args, wait_healthy=False) as outcrop:
        time.sleep(1.0)  # a few readiness polls find nobody listening
        before = outcrop.health()
        log = workdir / "llama_server.log"
        with log.open("wb") as sink:
            binary = llama_build.find_binary() or llama_build.build()
            # The prompt cache reuses the previous request's KV prefix and decodes only the
            # rest, whose logits need not match a whole-prompt decode bit for bit (llama.cpp's
            # server documentation says so): a tiny model's greedy choice may then tip, and the
            # same request get another answer after a different one, as the previous upstream
            # here (llama-cpp-python's server, which always reuses the prefix) was seen to do.
            options = LlamaServerOptions(n_ctx=2048, parallel=1, extra_args=("--no-cache-prompt",))
            command = options.command(binary, resolve_model(None), port)
            upstream = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(outcrop, upstream, log)
            yield Stack(outcrop, upstream, before)
        finally:
            upstream.terminate()
            try:
                upstream.wait(timeout=15)
            except subprocess.TimeoutExpired:
                upstream.kill()
                upstream.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The Outcrop and upstream the tests share; none of them changes their state."""
    with running_stack(tmp_path_factory.mktemp("upstream")) as shared:
        yield shared


def client(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, read_timeout=120),
    )


def claude(text: str, max_tokens: int = 12) -> str:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "temperature": 0,
            "messages": [{"role": "user", "content": text}],
        }
    )


def test_health_is_503_until_the_upstream_answers(stack: Stack) -> None:
    status, body = stack.health_before_upstream
    assert status == 503
    engine = body["engines"]["default"]  # type: ignore[index]
    assert engine["ready"] is False and engine["state"] == "loading"
    status, body = stack.outcrop.health()
    assert status == 200
    assert body["engines"]["default"]["model"]  # type: ignore[index]


def test_invoke_and_stream_agree(stack: Stack) -> None:
    rt = client(stack.outcrop)
    body = claude("Write one sentence about granite.")
    response = rt.invoke_model(modelId=HAIKU, body=body)
    whole = json.loads(response["body"].read())
    text = whole["content"][0]["text"]
    assert text.strip()
    assert whole["stop_reason"] in ("max_tokens", "end_turn")
    assert whole["usage"]["input_tokens"] > 5 and 0 < whole["usage"]["output_tokens"] <= 12
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert int(headers["x-amzn-bedrock-input-token-count"]) == whole["usage"]["input_tokens"]

    streamed = rt.invoke_model_with_response_stream(modelId=HAIKU, body=body)
    objects = [json.loads(e["chunk"]["bytes"]) for e in streamed["body"]]
    deltas = [o["delta"]["text"] for o in objects if o["type"] == "content_block_delta"]
    assert "".join(deltas) == text
    metrics = objects[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] == whole["usage"]["input_tokens"]
    assert metrics["outputTokenCount"] == whole["usage"]["output_tokens"]
    stop = next(o for o in objects if o["type"] == "message_delta")["delta"]["stop_reason"]
    assert stop == whole["stop_reason"]


def test_converse(stack: Stack) -> None:
    rt = client(stack.outcrop)
    response = rt.converse(
        modelId=HAIKU,
        messages=[{"role": "user", "content": [{"text": "Name a rock."}]}],
        inferenceConfig={"maxTokens": 8, "temperature": 0},
    )
    assert response["output"]["message"]["content"][0]["text"].strip()
    assert response["stopReason"] in ("max_tokens", "end_turn")
    usage = response["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert 0 < usage["outputTokens"] <= 8


def test_upstream_down_is_service_unavailable(tmp_path: Path) -> None:
    """On a stack of its own: it stops the upstream."""
    with running_stack(tmp_path) as stack:
        stack.upstream.terminate()
        stack.upstream.wait(timeout=15)
        rt = client(stack.outcrop)
        with pytest.raises(rt.exceptions.ServiceUnavailableException) as caught:
            rt.invoke_model(modelId=HAIKU, body=claude("Hello"))
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        # the server keeps serving: health now reports the upstream gone
        deadline = time.monotonic() + 15
        while stack.outcrop.health()[0] != 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stack.outcrop.health()[0] == 503
