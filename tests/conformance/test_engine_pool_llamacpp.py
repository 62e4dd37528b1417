"""An engine pool of three real llama.cpp servers (`llama-server` on the embedded default GGUF,
one thread each) behind `outcrop serve`, called with boto3 (docs/engine-pools.md).

One test, as the servers are costly: affinity routing decisions (a conversation goes to the
upstream its prefix hashes to, turn after turn), then one upstream killed (SIGKILL) under load:
the streams in flight on it end with `modelStreamErrorException`, no request that had not
started streaming fails (those sent to it after the kill are retried on the others), and once
it is started again on the same port the pool sends it traffic again.
"""

from __future__ import annotations

import functools
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from outcrop.engines.pool import affinity_key
from outcrop.engines.pool_routing import PoolPolicy, Router
from outcrop.types import ChatMessage, GenerationRequest, SamplingParams
from tests.support.llama_upstreams import llama_upstreams, pool_config
from tests.support.server import ServerProcess, running_server

pytestmark = pytest.mark.llamacpp

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
WAIT_S = 240.0


def client(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, read_timeout=180),
    )


@dataclass
class Outcome:
    started: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    text: str = ""
    stop_reason: str | None = None
    error: str | None = None
    error_after_start: bool = False


def converse_stream(rt: Any, system: str, text: str, max_tokens: int, out: Outcome) -> None:
    try:
        response = rt.converse_stream(
            modelId=HAIKU,
            system=[{"text": system}],
            messages=[{"role": "user", "content": [{"text": text}]}],
            inferenceConfig={"maxTokens": max_tokens, "temperature": 0},
        )
        for event in response["stream"]:
            if "contentBlockDelta" in event:
                out.text += event["contentBlockDelta"]["delta"].get("text", "")
                out.started.set()
            if "messageStop" in event:
                out.stop_reason = event["messageStop"]["stopReason"]
    except EventStreamError as exc:
        out.error = str(exc.response["Error"]["Code"])
        out.error_after_start = out.started.is_set()
    except ClientError as exc:
        out.error = str(exc.response["Error"]["Code"])
    finally:
        out.done.set()


def start(rt: Any, system: str, text: str, max_tokens: int) -> Outcome:
    out = Outcome()
    threading.Thread(
        target=converse_stream, args=(rt, system, text, max_tokens, out), daemon=True
    ).start()
    return out


def upstreams(server: ServerProcess) -> dict[str, dict[str, Any]]:
    _, body = server.health()
    engine: Any = body["engines"]["default"]  # type: ignore[index]
    return {u["upstream"]: u for u in engine["upstreams"]}


def wait_for(condition: Callable[[], bool], what: str, server: ServerProcess) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{server.log()[-4000:]}")
        time.sleep(0.1)


def routed(server: ServerProcess, wave: list[Outcome], count: int) -> bool:
    """Whether `count` streams of `wave` have reached an upstream (or ended)."""
    outstanding = sum(int(u["outstanding"]) for u in upstreams(server).values())
    return outstanding + sum(o.done.is_set() for o in wave) >= count


def systems_for(router: Router, target: str, count: int, tag: str) -> list[str]:
    """System prompts whose conversations (user text "Hi") hash to the upstream `target`."""
    found: list[str] = []
    i = 0
    while len(found) < count:
        system = f"You are assistant {tag}-{i}. Answer briefly."
        if router.preferred(key(system, "Hi")).name == target:
            found.append(system)
        i += 1
    return found


def key(system: str, text: str) -> str:
    request = GenerationRequest(
        (ChatMessage("system", system), ChatMessage("user", text)), SamplingParams(max_tokens=1)
    )
    prefix = affinity_key(request, PoolPolicy().affinity_prefix_chars)
    assert prefix is not None
    return prefix


def metric(server: ServerProcess, name: str, upstream: str) -> float:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    prefix = f'{name}{{engine="default",upstream="{upstream}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, f"{prefix!r} not in /metrics"
    return float(lines[0].removeprefix(prefix))


def test_pool_of_three_llama_servers(tmp_path: Path) -> None:
    with llama_upstreams(tmp_path, 3, n_ctx=1024, parallel=2) as servers:
        urls = [s.url for s in servers]
        config = pool_config(
            tmp_path / "pool.toml",
            urls,
            health_interval_s=0.5,
            health_timeout_s=2,
            failure_threshold=2,
            cooldown_s=1,
            max_attempts=3,
        )
        router = Router(urls, PoolPolicy(), time.monotonic)
        with running_server(["--config", str(config)]) as outcrop:
            wait_for(
                lambda: all(u["healthy"] for u in upstreams(outcrop).values()),
                "every upstream healthy",
                outcrop,
            )
            rt = client(outcrop)

            # Affinity: a conversation's turns all go to the upstream its start hashes to.
            home = urls[1]
            (system,) = systems_for(router, home, 1, "affinity")
            before = {u: s["requests"] for u, s in upstreams(outcrop).items()}
            turns: list[dict[str, Any]] = [{"role": "user", "content": [{"text": "Hi"}]}]
            for follow_up in ("Name a colour.", "Name another."):
                answer = rt.converse(
                    modelId=HAIKU,
                    system=[{"text": system}],
                    messages=turns,
                    inferenceConfig={"maxTokens": 6, "temperature": 0},
                )
                turns += [answer["output"]["message"]]
                turns += [{"role": "user", "content": [{"text": follow_up}]}]
            after = {u: s["requests"] for u, s in upstreams(outcrop).items()}
            assert {u: after[u] - before[u] for u in urls} == {
                u: 2 if u == home else 0 for u in urls
            }

            # Load: two long streams per upstream, started one after another (so that bounded
            # load does not spill a burst's early requests), all streaming before the kill.
            per_upstream = [systems_for(router, url, 2, "load") for url in urls]
            essay = "Write a long essay on the history of Rome, with many details."
            wave: list[Outcome] = []
            for systems in zip(*per_upstream, strict=True):
                for system in systems:
                    wave.append(start(client(outcrop), system, essay, 300))
                    wait_for(
                        functools.partial(routed, outcrop, wave, len(wave)),
                        "the stream to be routed",
                        outcrop,
                    )
            for out in wave:
                wait_for(out.started.is_set, "every stream to start", outcrop)
            # The victim: the upstream with the most streams in flight now.
            state = upstreams(outcrop)
            victim = max(urls, key=lambda url: int(state[url]["outstanding"]))
            victim_index = urls.index(victim)
            in_flight = int(state[victim]["outstanding"])
            servers[victim_index].kill()

            # Requests sent after the kill, two of them to conversations whose home it was:
            # none fails (refused connections are retried on the other upstreams).
            late = [
                start(client(outcrop), s, "Hi", 8)
                for s in systems_for(router, victim, 2, "late")
                + systems_for(router, next(u for u in urls if u != victim), 2, "late")
            ]
            for out in wave + late:
                wait_for(out.done.is_set, "every request to end", outcrop)
            for out in late:
                assert out.error is None and out.stop_reason is not None, out
            broken = [o for o in wave if o.error is not None]
            assert 1 <= len(broken) <= in_flight, (in_flight, wave)
            for out in broken:
                assert out.error == "modelStreamErrorException" and out.error_after_start, out
            for out in wave:
                assert out.error is not None or out.stop_reason is not None, out
            wait_for(lambda: not upstreams(outcrop)[victim]["healthy"], "victim down", outcrop)
            assert metric(outcrop, "outcrop_upstream_failures_total", victim) >= len(broken)
            assert metric(outcrop, "outcrop_upstream_healthy", victim) == 0.0
            status, body = outcrop.health()
            assert status == 200 and body["status"] == "ready"

            # Recovery: started again on the same port, it serves its conversations again.
            servers[victim_index].start()
            servers[victim_index].wait_ready()
            wait_for(lambda: upstreams(outcrop)[victim]["healthy"], "victim healthy", outcrop)
            before_requests = upstreams(outcrop)[victim]["requests"]
            for system in systems_for(router, victim, 3, "back"):
                out = Outcome()
                converse_stream(rt, system, "Hi", 6, out)
                assert out.error is None and out.stop_reason is not None, out
            returned = upstreams(outcrop)[victim]
            assert returned["requests"] - before_requests == 3
            assert returned["circuit"] == "closed"
            assert metric(outcrop, "outcrop_upstream_circuit_state", victim) == 0.0
