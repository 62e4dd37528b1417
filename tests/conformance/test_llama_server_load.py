"""The managed llama-server engine under load, through `outcrop serve`, with boto3 and with the
AWS SDK for JavaScript v3: a client that leaves stops its generation (measured in the engine's
token counter and on the child's own slot), `serviceTier` orders the queue in front of a
saturated server, and the JS SDK meets prompt caching, tools, stop sequences and a child killed
mid-stream as boto3 does (tests/conformance/test_llama_server_boto3.py, test_converse_llamacpp.py).

One server for the module, with one slot (`parallel = 1`), so a single long generation
saturates it. The long generation is a raw completion prompt that counts (`1, 2, 3, ...`): the
model goes on until `max_tokens` rather than ending its turn, so a generation that was not
stopped is plain to see.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conformance.jsclient import JsCall, run_js
from tests.support.server import ServerProcess, running_server

pytestmark = pytest.mark.llamacpp

MISTRAL = "mistral.mistral-7b-instruct-v0:2"
NOVA = "us.amazon.nova-lite-v1:0"
LONG = 900
"""max_tokens of the counting generation (the slot holds 1024 tokens)."""
AFTER_DISCONNECT_MAX = 300
"""Tokens a generation may still make after its client left: far fewer than the LONG - a few
it would make if it were not stopped (what was measured on 2 shared cores is in the report of
each run: `-s` prints it)."""
TIERS = ("flex", "default", "priority")
"""Arrival order of the queued calls: the reverse of the order they must be served in."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("load") / "outcrop.toml"
    config.write_text('[engines.default]\ntype = "llamacpp"\nparallel = 1\nn_ctx = 1024\n')
    with running_server(["--config", str(config)], ready_timeout=600) as running:
        yield running


def client(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, read_timeout=300),
    )


def counting(max_tokens: int = LONG) -> dict[str, Any]:
    return {"prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": max_tokens, "temperature": 0}


def engine(server: ServerProcess) -> dict[str, Any]:
    engines = server.health()[1]["engines"]
    assert isinstance(engines, dict)
    return dict(engines["default"])


def child_slot(server: ServerProcess) -> dict[str, Any]:
    """The child's one slot as llama-server's `/slots` reports it."""
    port = engine(server)["port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/slots", timeout=10) as response:
        (slot,) = json.loads(response.read())
    assert isinstance(slot, dict)
    return slot


def until(condition: Callable[[], bool], what: str, timeout: float = 180.0) -> None:
    """Wait for `condition` (a bounded wait on state, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def waiting(server: ServerProcess, count: int) -> Callable[[], bool]:
    """Whether `count` calls wait for the slot (tokenized, in the engine's queue)."""
    return lambda: engine(server)["queue_depth"] == count


def idle(server: ServerProcess) -> bool:
    return engine(server)["busy_slots"] == 0 and not child_slot(server)["is_processing"]


def check_stopped(server: ServerProcess, before: dict[str, Any], received: int) -> None:
    """The generation a client left was aborted: Outcrop read few tokens after the client went,
    and the child's slot holds only the prompt and what was generated until it stopped."""
    until(lambda: idle(server), "the slot is free")
    after = engine(server)
    assert after["aborted"] == before["aborted"] + 1
    generated = after["generated_tokens"] - before["generated_tokens"]
    # An idle slot's n_prompt_tokens is what its cache holds: the ~20-token prompt plus every
    # token the child generated for the request.
    held = child_slot(server)["n_prompt_tokens"]
    print(
        f"\ntokens: received {received}, generated {generated}, after disconnect "
        f"{generated - received}; the child's slot holds {held} of a possible {LONG + 20}"
    )
    assert generated - received < AFTER_DISCONNECT_MAX
    assert held < AFTER_DISCONNECT_MAX + received + 40


# -- disconnect and priority: boto3 ------------------------------------------------------------


def test_boto3_stream_closed_early_stops_generation(server: ServerProcess) -> None:
    until(lambda: idle(server), "the slot is free")
    before = engine(server)
    response = client(server).invoke_model_with_response_stream(
        modelId=MISTRAL, body=json.dumps(counting())
    )
    events = iter(response["body"])
    received = [json.loads(next(events)["chunk"]["bytes"]) for _ in range(4)]
    assert all(r["outputs"][0]["stop_reason"] is None for r in received)
    response["body"].close()
    check_stopped(server, before, len(received))


def test_boto3_service_tier_orders_a_saturated_server(server: ServerProcess) -> None:
    until(lambda: idle(server), "the slot is free")
    blocker = client(server).invoke_model_with_response_stream(
        modelId=MISTRAL, body=json.dumps(counting())
    )
    next(iter(blocker["body"]))  # it holds the only slot
    finished: list[str] = []
    failures: list[BaseException] = []

    def ask(tier: str) -> None:
        try:
            answer = client(server).converse(
                modelId=NOVA,
                messages=[{"role": "user", "content": [{"text": f"Say {tier}."}]}],
                inferenceConfig={"maxTokens": 8, "temperature": 0},
                serviceTier={"type": tier},
            )
            assert answer["serviceTier"] == {"type": tier}
            finished.append(tier)
        except BaseException as exc:
            failures.append(exc)

    threads = []
    try:
        for queued, tier in enumerate(TIERS, start=1):
            threads.append(threading.Thread(target=ask, args=(tier,)))
            threads[-1].start()
            until(waiting(server, queued), f"{queued} calls wait")
    finally:
        blocker["body"].close()  # the slot frees; the queue is served in tier order
        for thread in threads:
            thread.join(timeout=300)
    assert failures == []
    assert finished == ["priority", "default", "flex"]


# -- the same with the JS SDK ------------------------------------------------------------------


@pytest.mark.node
def test_js_stream_aborted_early_stops_generation(server: ServerProcess) -> None:
    until(lambda: idle(server), "the slot is free")
    before = engine(server)
    run = run_js(
        {
            "endpoint": server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": MISTRAL,
            "body": counting(),
            "abortAfterEvents": 4,
        },
        timeout=300,
    )
    assert run.ok()["aborted"] is True and len(run.events) == 4
    check_stopped(server, before, len(run.events))


@pytest.mark.node
def test_js_service_tier_orders_a_saturated_server(server: ServerProcess) -> None:
    until(lambda: idle(server), "the slot is free")
    blocker = JsCall(
        {
            "endpoint": server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": MISTRAL,
            "body": counting(),
        }
    )
    finished: list[str] = []
    calls: list[tuple[str, JsCall]] = []
    try:
        blocker.read_events(1)  # it holds the only slot
        for queued, tier in enumerate(TIERS, start=1):
            command = {
                "endpoint": server.url,
                "operation": "Converse",
                "modelId": NOVA,
                "input": {
                    "messages": [{"role": "user", "content": [{"text": f"Say {tier}."}]}],
                    "inferenceConfig": {"maxTokens": 8, "temperature": 0},
                    "serviceTier": {"type": tier},
                },
                "maxAttempts": 1,
            }
            calls.append((tier, JsCall(command)))
            until(waiting(server, queued), f"{queued} calls wait")
    finally:
        blocker.kill()  # the client vanishes: its generation stops and the slot frees

    def wait(tier: str, call: JsCall) -> None:
        output = call.wait(timeout=300).ok()["output"]
        assert output["serviceTier"] == {"type": tier}
        finished.append(tier)

    threads = [threading.Thread(target=wait, args=pair) for pair in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert finished == ["priority", "default", "flex"]


def converse_js(server: ServerProcess, **input: Any) -> dict[str, Any]:
    run = run_js(
        {"endpoint": server.url, "operation": "Converse", "modelId": NOVA, "input": input},
        timeout=300,
    )
    output: dict[str, Any] = run.ok()["output"]
    return output


@pytest.mark.node
def test_js_converse_cache_point_reads_what_the_first_call_wrote(server: ServerProcess) -> None:
    document = "Basalt is a dark volcanic rock that cools quickly at the surface. " * 20
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
    first = converse_js(server, messages=messages, inferenceConfig=config)["usage"]
    second = converse_js(server, messages=messages, inferenceConfig=config)["usage"]
    # The first call wrote the new document into the cache (whatever opening of the chat
    # template an earlier test left in the slot it read); the second read all of it.
    assert first["cacheWriteInputTokens"] > 200
    assert second["cacheReadInputTokens"] == (
        first["cacheReadInputTokens"] + first["cacheWriteInputTokens"]
    )
    assert second["cacheWriteInputTokens"] == 0
    for usage in (first, second):
        cached = usage["cacheReadInputTokens"] + usage["cacheWriteInputTokens"]
        assert usage["totalTokens"] == usage["inputTokens"] + cached + usage["outputTokens"]


@pytest.mark.node
def test_js_tool_use_round_trip(server: ServerProcess) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city", "days"],
    }
    tools = {
        "tools": [
            {
                "toolSpec": {
                    "name": "forecast",
                    "description": "Weather forecast for a city",
                    "inputSchema": {"json": schema},
                }
            }
        ]
    }
    question = {"role": "user", "content": [{"text": "What will the weather be in Lisbon?"}]}
    called = converse_js(
        server,
        messages=[question],
        toolConfig={**tools, "toolChoice": {"tool": {"name": "forecast"}}},
        inferenceConfig={"maxTokens": 60, "temperature": 0},
    )
    assert called["stopReason"] == "tool_use"
    message = called["output"]["message"]
    (block,) = message["content"]
    use = block["toolUse"]
    assert use["name"] == "forecast" and use["toolUseId"].startswith("tooluse_")
    assert isinstance(use["input"]["city"], str) and use["input"]["days"] >= 1
    result = {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"sky": "sunny"}}]}}
        ],
    }
    answered = converse_js(
        server,
        messages=[question, message, result],
        toolConfig=tools,
        inferenceConfig={"maxTokens": 20, "temperature": 0},
    )
    assert answered["stopReason"] in ("end_turn", "max_tokens")
    (answer,) = answered["output"]["message"]["content"]
    assert answer["text"].strip()


@pytest.mark.node
def test_js_stop_sequence_ends_the_answer(server: ServerProcess) -> None:
    messages = [{"role": "user", "content": [{"text": "Count from one to ten in words."}]}]
    config = {"maxTokens": 40, "temperature": 0}
    text = converse_js(server, messages=messages, inferenceConfig=config)["output"]["message"][
        "content"
    ][0]["text"]
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    stopped = converse_js(
        server, messages=messages, inferenceConfig={**config, "stopSequences": [stop]}
    )
    assert stopped["stopReason"] == "stop_sequence"
    assert stopped["output"]["message"]["content"][0]["text"] == text[: text.find(stop)]


@pytest.mark.node
def test_js_child_killed_mid_stream_is_a_stream_error_then_served_again(
    server: ServerProcess,
) -> None:
    until(lambda: idle(server), "the slot is free")
    pid, restarts = engine(server)["pid"], engine(server)["restarts"]
    call = JsCall(
        {
            "endpoint": server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": MISTRAL,
            "body": counting(),
            "maxAttempts": 1,
        }
    )
    try:
        call.read_events(3)
        os.kill(pid, signal.SIGKILL)
        run = call.wait(timeout=300)
    finally:
        call.kill()
    assert len(run.events) >= 3
    error = run.error
    assert error is not None and error["name"] == "ModelStreamErrorException", run.final
    until(lambda: engine(server)["ready"] and engine(server)["pid"] != pid, "the child is back")
    assert engine(server)["restarts"] == restarts + 1
    again = converse_js(
        server,
        messages=[{"role": "user", "content": [{"text": "Hi"}]}],
        inferenceConfig={"maxTokens": 3},
    )
    assert again["usage"]["outputTokens"] >= 1
