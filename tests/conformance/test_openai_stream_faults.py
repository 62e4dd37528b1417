"""Stream fault rules and the active-streams gauge on Bedrock's OpenAI-compatible endpoint, with
the official `openai` Python SDK (docs/openai-endpoint.md): an error after K chunks ends the
server-sent events with one OpenAI-shaped error event, a cut stream ends after K chunks without
`[DONE]`, and a streaming call counts in `outcrop_active_streams` until it ends."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import openai
import pytest

from outcrop.testing import faults
from tests.support.server import ServerProcess

QWEN = "qwen.qwen3-32b-v1:0"


def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key="unused", max_retries=0)


def stream(server: ServerProcess, text: str) -> Any:
    return client(server).chat.completions.create(
        model=QWEN, messages=[{"role": "user", "content": text}], max_tokens=50, stream=True
    )


def active_streams(server: ServerProcess) -> float:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("outcrop_active_streams{")
    )


def test_stream_error_after_k_chunks(scripted_server: ServerProcess) -> None:
    received: list[Any] = []
    with faults(scripted_server.url) as f:
        f.inject(
            "stream_error",
            error="modelStreamErrorException",
            message="injected mid-stream",
            after_events=3,
            model=QWEN,
            times=1,
        )
        with pytest.raises(openai.APIError) as raised:
            for chunk in stream(scripted_server, "one two three four five six"):
                received.append(chunk)
    assert len(received) == 3
    assert all(c.choices[0].finish_reason is None for c in received)
    assert raised.value.message == "injected mid-stream"
    assert raised.value.body == {
        "message": "injected mid-stream",
        "type": "api_error",
        "param": None,
        "code": "ModelStreamErrorException",
    }


def test_cut_stream_ends_without_finish(scripted_server: ServerProcess) -> None:
    with faults(scripted_server.url) as f:
        f.inject("cut", after_events=2, model=QWEN, times=1)
        chunks = list(stream(scripted_server, "one two three four five six"))
    assert len(chunks) == 2
    assert all(c.choices[0].finish_reason is None for c in chunks)
    # the rule was used up: the next stream is whole
    whole = list(stream(scripted_server, "one two"))
    assert whole[-1].choices[0].finish_reason == "stop"


def test_active_streams_gauge(scripted_server: ServerProcess) -> None:
    before = active_streams(scripted_server)
    with faults(scripted_server.url) as f:
        f.inject("stall", after_events=2, stall_seconds=600, model=QWEN, times=1)
        chunks = stream(scripted_server, "one two three")
        try:
            iterator = iter(chunks)
            next(iterator), next(iterator)
            assert active_streams(scripted_server) == before + 1
        finally:
            chunks.close()
    # the server sees the client leave and ends the stream (bounded wait, no timing asserted)
    deadline = time.monotonic() + 30
    while active_streams(scripted_server) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert active_streams(scripted_server) == before
