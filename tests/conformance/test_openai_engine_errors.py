"""Upstream failures of the openai engine as boto3 sees them: `outcrop serve --engine openai`
in front of a small aiohttp upstream (in a thread, on loopback) that fails as the prompt says.

400 from the upstream → ValidationException; 500 → ModelErrorException; an error event after
the first token → modelStreamErrorException inside the stream; the server keeps serving. A
stream that ends without a finish_reason (cut, or `[DONE]` without one) is never a normal
answer: ServiceUnavailableException before the first token, modelStreamErrorException after it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aiohttp import web
from botocore.config import Config
from botocore.exceptions import EventStreamError

from tests.support.server import ServerProcess, free_port, running_server

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def _sse(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "failing"}]})


async def _chat(request: web.Request) -> web.StreamResponse:
    prompt = (await request.json())["messages"][-1]["content"]
    if prompt == "fail400":
        return web.json_response({"error": {"message": "max_tokens is too large"}}, status=400)
    if prompt == "fail500":
        return web.json_response({"error": {"message": "CUDA error"}}, status=500)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    if prompt == "cut-before-any-token":
        return response
    await response.write(_sse({"choices": [{"index": 0, "delta": {"content": "Hi"}}]}))
    if prompt == "midstream":
        await response.write(_sse({"error": {"message": "engine died"}}))
        return response
    if prompt == "cut":  # the stream ends with neither a finish_reason nor [DONE]
        return response
    if prompt == "done-without-finish":
        await response.write(b"data: [DONE]\n\n")
        return response
    finish = {"index": 0, "delta": {}, "finish_reason": "stop"}
    await response.write(_sse({"choices": [finish]}) + b"data: [DONE]\n\n")
    return response


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = free_port()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/chat/completions", _chat)
    runner = web.AppRunner(app)

    async def setup() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(setup(), loop).result(timeout=10)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def outcrop(upstream: str) -> Iterator[ServerProcess]:
    with running_server(["--engine", "openai", "--upstream", upstream]) as server:
        yield server


def client(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


def claude(text: str) -> str:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": text}],
        }
    )


def test_upstream_400_is_a_validation_exception(outcrop: ServerProcess) -> None:
    rt = client(outcrop)
    with pytest.raises(rt.exceptions.ValidationException) as caught:
        rt.invoke_model(modelId=HAIKU, body=claude("fail400"))
    assert "max_tokens is too large" in caught.value.response["Error"]["Message"]


def test_upstream_500_is_a_model_error(outcrop: ServerProcess) -> None:
    rt = client(outcrop)
    with pytest.raises(rt.exceptions.ModelErrorException) as caught:
        rt.invoke_model(modelId=HAIKU, body=claude("fail500"))
    assert "CUDA error" in caught.value.response["Error"]["Message"]


def test_error_event_mid_stream_is_a_model_stream_error(outcrop: ServerProcess) -> None:
    rt = client(outcrop)
    response = rt.invoke_model_with_response_stream(modelId=HAIKU, body=claude("midstream"))
    chunks: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as caught:
        for event in response["body"]:
            chunks.append(json.loads(event["chunk"]["bytes"]))
    assert caught.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert any(c.get("delta", {}).get("text") == "Hi" for c in chunks)
    # still serving
    whole = json.loads(rt.invoke_model(modelId=HAIKU, body=claude("ok"))["body"].read())
    assert whole["content"][0]["text"] == "Hi" and whole["stop_reason"] == "end_turn"


def test_stream_cut_before_any_token_is_service_unavailable(outcrop: ServerProcess) -> None:
    rt = client(outcrop)
    with pytest.raises(rt.exceptions.ServiceUnavailableException):
        rt.invoke_model(modelId=HAIKU, body=claude("cut-before-any-token"))
    with pytest.raises(rt.exceptions.ServiceUnavailableException):
        rt.invoke_model_with_response_stream(modelId=HAIKU, body=claude("cut-before-any-token"))
    with pytest.raises(rt.exceptions.ServiceUnavailableException):
        rt.converse_stream(
            modelId=HAIKU,
            messages=[{"role": "user", "content": [{"text": "cut-before-any-token"}]}],
        )


@pytest.mark.parametrize("prompt", ["cut", "done-without-finish"])
def test_stream_cut_after_a_token_is_a_model_stream_error(
    outcrop: ServerProcess, prompt: str
) -> None:
    rt = client(outcrop)
    response = rt.invoke_model_with_response_stream(modelId=HAIKU, body=claude(prompt))
    chunks: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as caught:
        for event in response["body"]:
            chunks.append(json.loads(event["chunk"]["bytes"]))
    assert caught.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert any(c.get("delta", {}).get("text") == "Hi" for c in chunks)
    assert not any(c["type"] == "message_stop" for c in chunks)  # no end_turn finish

    stream = rt.converse_stream(
        modelId=HAIKU, messages=[{"role": "user", "content": [{"text": prompt}]}]
    )
    events: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as caught:
        for event in stream["stream"]:
            events.append(event)
    assert caught.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert not any("messageStop" in event for event in events)


def test_stream_cut_after_a_token_fails_a_non_streaming_call(outcrop: ServerProcess) -> None:
    rt = client(outcrop)
    # InvokeModel and Converse model no stream exception: a model failing part-way is a
    # ModelErrorException there, never a 200 with the truncated "Hi".
    with pytest.raises(rt.exceptions.ModelErrorException) as caught:
        rt.invoke_model(modelId=HAIKU, body=claude("cut"))
    assert "without a finish_reason" in caught.value.response["Error"]["Message"]
    with pytest.raises(rt.exceptions.ModelErrorException) as caught:
        rt.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "cut"}]}])
    assert "without a finish_reason" in caught.value.response["Error"]["Message"]
