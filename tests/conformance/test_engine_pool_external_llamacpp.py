"""A `llamacpp` engine over llama-servers it did not start (`upstreams`), as an engine pool,
through `outcrop serve` with boto3: the engine reads the chat template from the servers, counts
tokens exactly with them, and a server killed and started again on the same port leaves the
pool serving throughout and is used again once it is back."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from outcrop.engines.pool import affinity_key
from outcrop.engines.pool_routing import PoolPolicy, Router
from outcrop.types import ChatMessage, GenerationRequest, SamplingParams
from tests.support.llama_upstreams import llama_upstreams
from tests.support.server import ServerProcess, running_server

pytestmark = pytest.mark.llamacpp

NOVA = "us.amazon.nova-lite-v1:0"


def upstreams(server: ServerProcess) -> dict[str, dict[str, Any]]:
    engines: Any = server.health()[1]["engines"]
    return {u["upstream"]: u for u in engines["default"]["upstreams"]}


def wait_for(check: Any, what: str, server: ServerProcess) -> None:
    deadline = time.monotonic() + 180
    while not check():
        assert time.monotonic() < deadline, f"{what}:\n{server.log()[-3000:]}"
        time.sleep(0.1)


def system_for(names: list[str], target: str, tag: str) -> str:
    router = Router(names, PoolPolicy(), time.monotonic)
    for i in range(1000):
        system = f"You are helper {tag}-{i}."
        request = GenerationRequest(
            (ChatMessage("system", system), ChatMessage("user", "Hi")),
            SamplingParams(max_tokens=1),
        )
        if router.preferred(affinity_key(request, 2048) or "").name == target:
            return system
    raise AssertionError("no system prompt hashes there")


def test_external_llama_servers_as_a_pool(tmp_path: Path) -> None:
    with llama_upstreams(tmp_path, 2, n_ctx=512, parallel=1) as servers:
        names = [s.base for s in servers]
        config = tmp_path / "external.toml"
        config.write_text(
            "[engines.default]\n"
            'type = "llamacpp"\n'
            f"upstreams = {json.dumps(names)}\n"
            "[engines.default.pool]\n"
            "health_interval_s = 0.5\n"
            "failure_threshold = 1\n"
            "cooldown_s = 0.5\n"
        )
        with running_server(["--config", str(config)]) as server:
            rt = boto3.client(
                "bedrock-runtime",
                endpoint_url=server.url,
                region_name="us-east-1",
                aws_access_key_id="x",
                aws_secret_access_key="x",
                config=Config(retries={"max_attempts": 1}, read_timeout=300),
            )
            wait_for(lambda: all(u["healthy"] for u in upstreams(server).values()), "up", server)

            def converse(system: str) -> dict[str, Any]:
                answer: dict[str, Any] = rt.converse(
                    modelId=NOVA,
                    system=[{"text": system}],
                    messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                    inferenceConfig={"maxTokens": 3, "temperature": 0},
                )
                return answer

            home = names[0]
            system = system_for(names, home, "home")
            counted = rt.count_tokens(
                modelId=NOVA,
                input={
                    "converse": {
                        "system": [{"text": system}],
                        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
                    }
                },
            )["inputTokens"]
            first = converse(system)
            # Exact counts from the server's tokenizer over the GGUF's own template: the
            # SmolLM2 chat template wraps each turn in <|im_start|>role ... <|im_end|>.
            assert first["usage"]["inputTokens"] == counted > len(system.split()) + 6
            assert upstreams(server)[home]["requests"] == 1

            servers[0].kill()
            for tag in ("a", "b"):
                for target in names:
                    answer = converse(system_for(names, target, tag))
                    assert answer["usage"]["outputTokens"] >= 1
            wait_for(lambda: not upstreams(server)[home]["healthy"], "home down", server)

            servers[0].start()
            servers[0].wait_ready()
            wait_for(lambda: upstreams(server)[home]["healthy"], "home back", server)
            before = upstreams(server)[home]["requests"]
            assert converse(system)["usage"]["outputTokens"] >= 1
            assert upstreams(server)[home]["requests"] == before + 1
