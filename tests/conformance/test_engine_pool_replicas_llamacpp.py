"""A managed llama.cpp engine with `replicas = 2` (two llama-server children as an engine pool)
through `outcrop serve`, called with boto3: a child killed outright does not fail the requests
that follow (they go to the other child while it restarts), the restarted child serves again,
and no child outlives the server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from outcrop.engines.pool import affinity_key
from outcrop.engines.pool_routing import PoolPolicy, Router
from outcrop.types import ChatMessage, GenerationRequest, SamplingParams
from tests.conformance.test_llama_server_boto3 import alive
from tests.support.server import ServerProcess, running_server

pytestmark = pytest.mark.llamacpp

NOVA = "us.amazon.nova-lite-v1:0"
CONFIG = """
[engines.default]
type = "llamacpp"
replicas = 2
parallel = 1
n_ctx = 512
n_threads = 1

[engines.default.pool]
health_interval_s = 0.5
failure_threshold = 1
cooldown_s = 0.5
"""


def upstreams(server: ServerProcess) -> list[dict[str, Any]]:
    engines: Any = server.health()[1]["engines"]
    return list(engines["default"]["upstreams"])


def wait_for(check: Any, what: str, server: ServerProcess) -> None:
    deadline = time.monotonic() + 180
    while not check():
        assert time.monotonic() < deadline, f"{what}:\n{server.log()[-3000:]}"
        time.sleep(0.1)


def system_for(target: str, tag: str) -> str:
    router = Router(["replica-0", "replica-1"], PoolPolicy(), time.monotonic)
    for i in range(1000):
        system = f"You are helper {tag}-{i}."
        request = GenerationRequest(
            (ChatMessage("system", system), ChatMessage("user", "Hi")),
            SamplingParams(max_tokens=1),
        )
        if router.preferred(affinity_key(request, 2048) or "").name == target:
            return system
    raise AssertionError("no system prompt hashes there")


def converse(rt: Any, system: str) -> dict[str, Any]:
    answer: dict[str, Any] = rt.converse(
        modelId=NOVA,
        system=[{"text": system}],
        messages=[{"role": "user", "content": [{"text": "Hi"}]}],
        inferenceConfig={"maxTokens": 3, "temperature": 0},
    )
    return answer


def test_replicas_serve_through_a_child_crash(tmp_path: Path) -> None:
    config = tmp_path / "replicas.toml"
    config.write_text(CONFIG)
    with running_server(["--config", str(config)], ready_timeout=600) as server:
        rt = boto3.client(
            "bedrock-runtime",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1}, read_timeout=300),
        )
        wait_for(lambda: all(u["healthy"] for u in upstreams(server)), "both healthy", server)
        pids = [u["pid"] for u in upstreams(server)]
        assert len(set(pids)) == 2 and all(alive(p) for p in pids)

        os.kill(pids[0], signal.SIGKILL)
        # Sent at once, two of them to conversations whose home is the dead child.
        for tag in ("a", "b"):
            for target in ("replica-0", "replica-1"):
                assert converse(rt, system_for(target, tag))["usage"]["outputTokens"] >= 1

        wait_for(
            lambda: upstreams(server)[0]["healthy"] and upstreams(server)[0]["restarts"] == 1,
            "the child restarted",
            server,
        )
        restarted = upstreams(server)[0]
        assert restarted["pid"] != pids[0]
        before = restarted["requests"]
        converse(rt, system_for("replica-0", "back"))
        assert upstreams(server)[0]["requests"] == before + 1
        children = [u["pid"] for u in upstreams(server)]
    deadline = time.monotonic() + 10
    while any(alive(p) for p in children):
        assert time.monotonic() < deadline, "a llama-server child outlived outcrop serve"
        time.sleep(0.1)
