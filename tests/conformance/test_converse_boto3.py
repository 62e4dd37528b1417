"""Converse, ConverseStream and CountTokens through boto3 against `outcrop serve` started as a
process on scripted engines: event order and shapes (compared with recorded real traffic), tool
use round trips, reasoning, streaming/non-streaming agreement, Bedrock's errors."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import jsonschema
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from outcrop.catalog.foundation import foundation_models
from tests.support.converse_recordings import conforms, interactions, signature
from tests.support.server import ServerProcess, running_server

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-micro-v1:0"
GPT_OSS = "openai.gpt-oss-20b-1:0"
BROKEN = "anthropic.claude-instant-v1"  # routed to a scripted engine that fails mid-stream
EMBED = "amazon.titan-embed-text-v2:0"

CONFIG = """
[engines.default]
type = "scripted"

[engines.broken]
type = "scripted"
fail_after_tokens = 2

[[models]]
match = "anthropic.claude-instant-v1"
engine = "broken"

[[models]]
match = "*"
engine = "default"
"""

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "Current weather in a city",
                "inputSchema": {"json": WEATHER_SCHEMA},
            }
        },
        {
            "toolSpec": {
                "name": "get_time",
                "description": "Local time in a city",
                "inputSchema": {
                    "json": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    }
                },
            }
        },
    ]
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("cfg") / "outcrop.toml"
    config.write_text(CONFIG)
    with running_server(["--config", str(config)]) as proc:
        yield proc


@pytest.fixture
def bedrock(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def stream_events(bedrock: Any, **kwargs: Any) -> list[tuple[str, dict[str, Any]]]:
    response = bedrock.converse_stream(**kwargs)
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == (
        "application/vnd.amazon.eventstream"
    )
    return [(kind, payload) for event in response["stream"] for kind, payload in event.items()]


def folded(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """What an application reconstructs from a stream: content blocks, stop reason, usage."""
    blocks: dict[int, dict[str, Any]] = {}
    stop: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    for kind, payload in events:
        if kind == "contentBlockStart":
            use = payload["start"]["toolUse"]
            blocks[payload["contentBlockIndex"]] = {"toolUse": {"name": use["name"], "input": ""}}
        elif kind == "contentBlockDelta":
            delta = payload["delta"]
            block = blocks.setdefault(payload["contentBlockIndex"], {})
            if "text" in delta:
                block["text"] = block.get("text", "") + delta["text"]
            elif "toolUse" in delta:
                block["toolUse"]["input"] += delta["toolUse"]["input"]
            elif "reasoningContent" in delta:
                reasoning = block.setdefault("reasoning", {"text": ""})
                reasoning["text"] += delta["reasoningContent"].get("text", "")
                if "signature" in delta["reasoningContent"]:
                    reasoning["signed"] = True
        elif kind == "messageStop":
            stop = payload
        elif kind == "metadata":
            usage = payload["usage"]
    for block in blocks.values():
        if "toolUse" in block:
            block["toolUse"]["input"] = json.loads(block["toolUse"]["input"])
    return {"content": [blocks[i] for i in sorted(blocks)], "stop": stop, "usage": usage}


def folded_response(response: dict[str, Any]) -> dict[str, Any]:
    content = []
    for block in response["output"]["message"]["content"]:
        if "toolUse" in block:
            use = block["toolUse"]
            content.append({"toolUse": {"name": use["name"], "input": use["input"]}})
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"]["reasoningText"]
            item: dict[str, Any] = {"text": reasoning["text"]}
            if "signature" in reasoning:
                item["signed"] = True
            content.append({"reasoning": item})
        else:
            content.append(block)
    stop = {"stopReason": response["stopReason"]}
    if "additionalModelResponseFields" in response:
        stop["additionalModelResponseFields"] = response["additionalModelResponseFields"]
    return {"content": content, "stop": stop, "usage": response["usage"]}


def raw_post(server: ServerProcess, path: str, body: Any) -> tuple[int, dict[str, str], Any]:
    """POST a body as a client without an SDK would (no client-side validation)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        server.url + path, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, json.loads(err.read())


def client_error(call: Any, **kwargs: Any) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value


# -- Converse ----------------------------------------------------------------------------------


def test_converse_text(bedrock: Any) -> None:
    response = bedrock.converse(
        modelId=HAIKU,
        messages=[user("Hello there")],
        system=[{"text": "Be brief."}],
        inferenceConfig={"maxTokens": 50, "temperature": 0.2},
    )
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/json"
    assert response["output"]["message"] == {
        "role": "assistant",
        "content": [{"text": "Echo: Hello there"}],
    }
    assert response["stopReason"] == "end_turn"
    usage = response["usage"]
    assert usage["outputTokens"] == 4  # "Echo", ":", " Hello", " there"
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert isinstance(response["metrics"]["latencyMs"], int)


def test_converse_stream_matches_recorded_shapes(bedrock: Any) -> None:
    events = stream_events(bedrock, modelId=NOVA, messages=[user("What is the capital of France?")])
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert set(kinds[1:-3]) == {"contentBlockDelta"} and kinds[-3] == "contentBlockStop"
    recorded = interactions("pydai__test_bedrock_model_stream.txt")[0].events
    by_kind = {kind: payload for kind, payload in recorded}
    for kind, payload in events:
        conforms(signature(payload), signature(by_kind[kind]), kind)


def test_stream_and_non_stream_agree_on_text_and_usage(bedrock: Any) -> None:
    request = {
        "modelId": HAIKU,
        "messages": [
            user("first question"),
            {"role": "assistant", "content": [{"text": "first answer"}]},
            user("Tell me about the tides, briefly"),
        ],
        "inferenceConfig": {"maxTokens": 100},
    }
    response = bedrock.converse(**request)
    streamed = folded(stream_events(bedrock, **request))
    assert streamed == folded_response(response)
    assert streamed["content"] == [{"text": "Echo: Tell me about the tides, briefly"}]


def test_max_tokens_and_stop_sequences(bedrock: Any) -> None:
    response = bedrock.converse(
        modelId=HAIKU, messages=[user("one two three four")], inferenceConfig={"maxTokens": 2}
    )
    assert response["stopReason"] == "max_tokens"
    assert response["output"]["message"]["content"] == [{"text": "Echo:"}]
    assert response["usage"]["outputTokens"] == 2
    request = {
        "modelId": HAIKU,
        "messages": [user("alpha beta gamma")],
        "inferenceConfig": {"stopSequences": [" gamma"]},
        "additionalModelResponseFieldPaths": ["/stop_sequence"],
    }
    response = bedrock.converse(**request)
    assert response["stopReason"] == "stop_sequence"
    assert response["output"]["message"]["content"] == [{"text": "Echo: alpha beta"}]
    assert response["additionalModelResponseFields"] == {"stop_sequence": " gamma"}
    streamed = folded(stream_events(bedrock, **request))
    assert streamed == folded_response(response)


def test_echoes_performance_config_and_service_tier(bedrock: Any) -> None:
    request = {
        "modelId": NOVA,
        "messages": [user("Hi")],
        "performanceConfig": {"latency": "optimized"},
        "serviceTier": {"type": "priority"},
        "requestMetadata": {"team": "search", "env": "test"},
    }
    response = bedrock.converse(**request)
    assert response["performanceConfig"] == {"latency": "optimized"}
    assert response["serviceTier"] == {"type": "priority"}
    metadata = stream_events(bedrock, **request)[-1][1]
    assert metadata["performanceConfig"] == {"latency": "optimized"}
    assert metadata["serviceTier"] == {"type": "priority"}


def test_converse_serves_every_text_model_id(bedrock: Any) -> None:
    models = [
        m
        for m in foundation_models().values()
        if "TEXT" in m.output_modalities and m.model_id != BROKEN
    ]
    assert len(models) > 40
    for model in models:
        model_id = model.model_id if model.on_demand else f"us.{model.model_id}"
        response = bedrock.converse(modelId=model_id, messages=[user("ping")])
        assert response["output"]["message"]["content"] == [{"text": "Echo: ping"}], model_id


# -- tool use ----------------------------------------------------------------------------------


def tool_uses(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [b["toolUse"] for b in response["output"]["message"]["content"] if "toolUse" in b]


def test_tool_use_round_trip(bedrock: Any) -> None:
    question = user("What is the weather in Lisbon?")
    response = bedrock.converse(
        modelId=HAIKU, messages=[question], toolConfig={**TOOLS, "toolChoice": {"any": {}}}
    )
    assert response["stopReason"] == "tool_use"
    (use,) = tool_uses(response)
    assert use["name"] == "get_weather"
    jsonschema.validate(use["input"], WEATHER_SCHEMA)
    assert use["toolUseId"].startswith("tooluse_") and len(use["toolUseId"]) == 30
    followup = bedrock.converse(
        modelId=HAIKU,
        messages=[
            question,
            response["output"]["message"],
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": use["toolUseId"],
                            "content": [{"json": {"temperature": 21, "sky": "clear"}}],
                        }
                    }
                ],
            },
        ],
        toolConfig=TOOLS,
    )
    assert followup["stopReason"] == "end_turn"
    (answer,) = followup["output"]["message"]["content"]
    assert "21" in answer["text"] and "clear" in answer["text"]


def test_tool_choice_names_the_tool(bedrock: Any) -> None:
    request = {
        "modelId": NOVA,
        "messages": [user("What time is it in Oslo?")],
        "toolConfig": {**TOOLS, "toolChoice": {"tool": {"name": "get_time"}}},
    }
    response = bedrock.converse(**request)
    (use,) = tool_uses(response)
    assert use["name"] == "get_time"
    events = stream_events(bedrock, **request)
    starts = [p for k, p in events if k == "contentBlockStart"]
    assert [s["start"]["toolUse"]["name"] for s in starts] == ["get_time"]
    assert folded(events) == folded_response(response)


def test_tool_use_stream_matches_recorded_shapes(bedrock: Any) -> None:
    events = stream_events(
        bedrock,
        modelId=HAIKU,
        messages=[user("What is the weather in Barcelona?")],
        toolConfig=TOOLS,
    )
    kinds = [kind for kind, _ in events]
    assert kinds[:3] == ["messageStart", "contentBlockStart", "contentBlockDelta"]
    assert kinds[-4:] == ["contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]
    recorded = interactions("traceloop__test_anthropic_converse_stream_with_tool_use.txt")[0]
    shapes: dict[tuple[str, str], Any] = {}
    for kind, payload in recorded.events:
        variant = next(iter(payload.get("delta", payload.get("start", {}))), "")
        shapes.setdefault((kind, variant), signature(payload))
    for kind, payload in events:
        variant = next(iter(payload.get("delta", payload.get("start", {}))), "")
        conforms(signature(payload), shapes[(kind, variant)], f"{kind}/{variant}")
    assert events[-2][1] == {"stopReason": "tool_use"}
    (use,) = [b["toolUse"] for b in folded(events)["content"]]
    jsonschema.validate(use["input"], WEATHER_SCHEMA)


def test_tool_blocks_without_tool_config(bedrock: Any) -> None:
    error = client_error(
        bedrock.converse,
        modelId=HAIKU,
        messages=[
            user("q"),
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": "f", "input": {}}}],
            },
            {
                "role": "user",
                "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "r"}]}}],
            },
        ],
    )
    assert error.response["Error"] == {
        "Code": "ValidationException",
        "Message": "The toolConfig field must be defined when using toolUse and toolResult "
        "content blocks.",
    }


# -- reasoning ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "fields", "signed"),
    [
        (
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            {"thinking": {"type": "enabled", "budget_tokens": 64}},
            True,
        ),
        (GPT_OSS, {"reasoning_effort": "low"}, False),
    ],
)
def test_reasoning(bedrock: Any, model_id: str, fields: dict[str, Any], signed: bool) -> None:
    request = {
        "modelId": model_id,
        "messages": [user("Is 7 prime?")],
        "additionalModelRequestFields": fields,
    }
    response = bedrock.converse(**request)
    reasoning, answer = response["output"]["message"]["content"]
    text = reasoning["reasoningContent"]["reasoningText"]
    assert text["text"] == "Thinking about: Is 7 prime?"
    assert ("signature" in text) is signed
    assert answer == {"text": "Echo: Is 7 prime?"}
    events = stream_events(bedrock, **request)
    assert folded(events) == folded_response(response)
    recorded = interactions("pydai__test_bedrock_model_thinking_part_stream.txt")[0].events
    assert [k for k, _ in events if k != "contentBlockDelta"] == [
        k for k, _ in recorded if k != "contentBlockDelta"
    ]


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (
            [{"role": "assistant", "content": [{"text": "Hi"}]}, user("Yo")],
            "A conversation must start with a user message. Try again with a conversation that "
            "starts with a user message.",
        ),
        (
            [user("a"), user("b")],
            "A conversation must alternate between user and assistant roles. Make sure the "
            "conversation alternates between user and assistant roles and try again.",
        ),
        (
            [user(" ")],
            "The text field in the ContentBlock object at messages.0.content.0 is blank. Add text "
            "to the text field, and try again.",
        ),
    ],
)
def test_conversation_checks(bedrock: Any, messages: list[Any], message: str) -> None:
    for call in (bedrock.converse, bedrock.converse_stream, bedrock.count_tokens):
        if call == bedrock.count_tokens:
            error = client_error(call, modelId=HAIKU, input={"converse": {"messages": messages}})
        else:
            error = client_error(call, modelId=HAIKU, messages=messages)
        assert error.response["Error"] == {"Code": "ValidationException", "Message": message}
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_invalid_model_identifier(bedrock: Any) -> None:
    for error in (
        client_error(bedrock.converse, modelId="does-not-exist", messages=[user("x")]),
        client_error(bedrock.converse_stream, modelId="does-not-exist", messages=[user("x")]),
        client_error(
            bedrock.count_tokens,
            modelId="does-not-exist-model-v1:0",
            input={"converse": {"messages": [user("hello")]}},
        ),
    ):
        assert error.response["Error"] == {
            "Code": "ValidationException",
            "Message": "The provided model identifier is invalid.",
        }


def test_embedding_model_refuses_converse(bedrock: Any) -> None:
    error = client_error(bedrock.converse, modelId=EMBED, messages=[user("x")])
    assert error.response["Error"]["Code"] == "ValidationException"
    assert "text or chat model" in error.response["Error"]["Message"]


def test_shape_errors_from_raw_requests(server: ServerProcess) -> None:
    status, headers, body = raw_post(
        server,
        f"/model/{HAIKU}/converse",
        {"messages": [user("x")], "inferenceConfig": {"maxTokens": 0}},
    )
    assert status == 400
    assert headers["x-amzn-errortype"].startswith("ValidationException:")
    assert body == {
        "message": "1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed "
        "to satisfy constraint: Member must have value greater than or equal to 1"
    }
    status, _, body = raw_post(server, f"/model/{HAIKU}/converse-stream", b"{not json")
    assert (status, body) == (
        400,
        {"message": "Malformed input request, please reformat your input and try again."},
    )


def test_mid_stream_failure_is_a_model_stream_error(bedrock: Any) -> None:
    response = bedrock.converse_stream(modelId=BROKEN, messages=[user("one two three")])
    seen: list[str] = []
    with pytest.raises(EventStreamError) as caught:
        for event in response["stream"]:
            seen += list(event)
    assert seen[:2] == ["messageStart", "contentBlockDelta"]
    assert caught.value.response["Error"]["Code"] == "modelStreamErrorException"
    # The server keeps serving.
    assert bedrock.converse(modelId=HAIKU, messages=[user("still there?")])["stopReason"] == (
        "end_turn"
    )


def test_model_failure_in_converse_is_a_model_error(bedrock: Any) -> None:
    error = client_error(bedrock.converse, modelId=BROKEN, messages=[user("one two three")])
    assert error.response["Error"]["Code"] == "ModelErrorException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error.response["resourceName"] == BROKEN


# -- CountTokens -------------------------------------------------------------------------------


def test_count_tokens_equals_converse_input_usage(bedrock: Any) -> None:
    conversation = {
        "messages": [user("What is the weather in Paris?")],
        "system": [{"text": "You are terse."}],
        "toolConfig": {**TOOLS, "toolChoice": {"auto": {}}},
    }
    counted = bedrock.count_tokens(modelId=HAIKU, input={"converse": conversation})
    assert set(counted) - {"ResponseMetadata"} == {"inputTokens"}
    response = bedrock.converse(modelId=HAIKU, **conversation)
    assert counted["inputTokens"] == response["usage"]["inputTokens"] > 0
    streamed = folded(stream_events(bedrock, modelId=HAIKU, **conversation))
    assert streamed["usage"]["inputTokens"] == counted["inputTokens"]


def test_count_tokens_of_an_invoke_model_body(bedrock: Any) -> None:
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 20,
            "messages": [{"role": "user", "content": "Count these words please"}],
        }
    ).encode()
    counted = bedrock.count_tokens(modelId=HAIKU, input={"invokeModel": {"body": body}})
    invoked = bedrock.invoke_model(modelId=HAIKU, body=body)
    header = invoked["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"]
    assert (
        counted["inputTokens"]
        == int(header)
        == json.loads(invoked["body"].read())["usage"]["input_tokens"]
    )


def test_count_tokens_malformed_invoke_body(bedrock: Any) -> None:
    error = client_error(
        bedrock.count_tokens,
        modelId=HAIKU,
        input={"invokeModel": {"body": base64.b64decode("e30=") + b"{"}},
    )
    assert error.response["Error"]["Code"] == "ValidationException"
    assert error.response["Error"]["Message"].startswith("Malformed input request")
