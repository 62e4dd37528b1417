"""The managed llama-server default engine through `outcrop serve`, called with boto3: prompt
caching with `cachePoint`, stop sequences, a child killed mid-stream (a modelled stream error,
then the next request succeeds), and shutdown that leaves no child behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EventStreamError

from tests.support.server import ServerProcess, running_server

pytestmark = pytest.mark.llamacpp

NOVA = "us.amazon.nova-lite-v1:0"


def client(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, read_timeout=300),
    )


def engine_health(server: ServerProcess) -> dict[str, Any]:
    engines = server.health()[1]["engines"]
    assert isinstance(engines, dict)
    return dict(engines["default"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_converse_cache_point_reports_cache_write_then_read() -> None:
    """On a server of its own: the shared one keeps whatever prefix the tests before this one
    left in its slot (the chat template's first tokens), which the first call would read."""
    with running_server([], ready_timeout=300) as llama_server:
        _cache_point_write_then_read(llama_server)


def _cache_point_write_then_read(llama_server: ServerProcess) -> None:
    rt = client(llama_server)
    document = "Basalt is a dark volcanic rock that cools quickly at the surface. " * 30
    messages = [
        {
            "role": "user",
            "content": [
                {"text": f"{time.time_ns()} {document}"},
                {"cachePoint": {"type": "default"}},
                {"text": "Name one property of basalt."},
            ],
        }
    ]
    config = {"maxTokens": 3, "temperature": 0}
    first = rt.converse(modelId=NOVA, messages=messages, inferenceConfig=config)["usage"]
    second = rt.converse(modelId=NOVA, messages=messages, inferenceConfig=config)["usage"]
    assert first["cacheWriteInputTokens"] > 300 and first["cacheReadInputTokens"] == 0
    assert second["cacheReadInputTokens"] == first["cacheWriteInputTokens"]
    assert second["cacheWriteInputTokens"] == 0
    for usage in (first, second):
        cached = usage["cacheReadInputTokens"] + usage["cacheWriteInputTokens"]
        # the marked message is cached whole (docs/prompt-caching.md): the rest is little
        assert 0 <= usage["inputTokens"] < 40
        assert usage["totalTokens"] == usage["inputTokens"] + cached + usage["outputTokens"]
    plain = rt.converse(
        modelId=NOVA,
        messages=[{"role": "user", "content": [{"text": "Hi"}]}],
        inferenceConfig=config,
    )["usage"]
    assert set(plain) == {"inputTokens", "outputTokens", "totalTokens"}
    metrics = subprocess.run(
        ["curl", "-s", f"{llama_server.url}/metrics"], capture_output=True, text=True, check=False
    ).stdout
    assert "outcrop_cache_read_input_token_count_total" in metrics


def test_stop_sequence_ends_the_answer(llama_server: ServerProcess) -> None:
    rt = client(llama_server)
    messages = [{"role": "user", "content": [{"text": "Count from one to ten in words."}]}]
    config = {"maxTokens": 40, "temperature": 0}
    baseline = rt.converse(modelId=NOVA, messages=messages, inferenceConfig=config)
    text = baseline["output"]["message"]["content"][0]["text"]
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    stopped = rt.converse(
        modelId=NOVA, messages=messages, inferenceConfig={**config, "stopSequences": [stop]}
    )
    assert stopped["stopReason"] == "stop_sequence"
    assert stopped["output"]["message"]["content"][0]["text"] == text[: text.find(stop)]


def test_a_child_killed_mid_stream_gives_a_stream_error_and_the_next_request_works() -> None:
    with running_server([], ready_timeout=600) as server:
        rt = client(server)
        pid = engine_health(server)["pid"]
        assert isinstance(pid, int) and alive(pid)
        response = rt.converse_stream(
            modelId=NOVA,
            messages=[{"role": "user", "content": [{"text": "Tell a very long story."}]}],
            inferenceConfig={"maxTokens": 500, "temperature": 0},
        )
        events = iter(response["stream"])
        seen = [next(events) for _ in range(3)]
        assert any("contentBlockDelta" in e for e in seen)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(EventStreamError) as info:
            for _ in events:
                pass
        assert info.value.response["Error"]["Code"] == "modelStreamErrorException"
        deadline = time.monotonic() + 120
        while not engine_health(server)["ready"]:
            assert time.monotonic() < deadline, "the child was not restarted"
            time.sleep(0.2)
        health = engine_health(server)
        assert health["restarts"] == 1 and health["pid"] != pid
        answer = rt.converse(
            modelId=NOVA,
            messages=[{"role": "user", "content": [{"text": "Hi"}]}],
            inferenceConfig={"maxTokens": 3},
        )
        assert answer["usage"]["outputTokens"] >= 1


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_shutdown_leaves_no_child(how: signal.Signals) -> None:
    with running_server([], ready_timeout=600) as server:
        pid = engine_health(server)["pid"]
        assert isinstance(pid, int) and alive(pid)
        server.proc.send_signal(how)
        server.proc.wait(timeout=60)
    deadline = time.monotonic() + 10  # SIGKILL: the child's parent-death signal
    while alive(pid):
        assert time.monotonic() < deadline, f"llama-server {pid} outlived outcrop serve"
        time.sleep(0.1)
