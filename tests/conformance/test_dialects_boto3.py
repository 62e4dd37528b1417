"""Every model family's InvokeModel / InvokeModelWithResponseStream body through boto3, against
`outcrop serve` (scripted engine) started as a process: answers, stop reasons, usage, stream
objects compared with recorded real Bedrock traffic, tool use, reasoning, and the Bedrock
validation errors for bad bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conformance.dialect_cases import (
    BY_NAME,
    FAMILIES,
    PROMPT,
    TOOLS_MODELS,
    Family,
    server_config,
)
from tests.support.recordings import (
    describe,
    nr_stream,
    response_body,
    shape,
    stream_objects,
    stream_shape,
)
from tests.support.server import ServerProcess, running_server

Obj = dict[str, Any]
METRICS = "amazon-bedrock-invocationMetrics"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("cfg") / "outcrop.toml"
    config.write_text(server_config())
    with running_server(["--config", str(config)]) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        # Module-scoped, so created before the per-test dummy-credential fixture runs.
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def invoke(client: Any, model_id: str, body: Obj) -> tuple[Obj, dict[str, str]]:
    response = client.invoke_model(modelId=model_id, body=json.dumps(body))
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert response["contentType"] == "application/json"
    return json.loads(response["body"].read()), headers


def stream(client: Any, model_id: str, body: Obj) -> list[Obj]:
    response = client.invoke_model_with_response_stream(modelId=model_id, body=json.dumps(body))
    assert response["contentType"] == "application/json"
    return [json.loads(event["chunk"]["bytes"]) for event in response["body"]]


def bedrock_error(client: Any, model_id: str, body: Obj | str, streaming: bool = False) -> Any:
    raw = body if isinstance(body, str) else json.dumps(body)
    call = client.invoke_model_with_response_stream if streaming else client.invoke_model
    with pytest.raises(ClientError) as info:
        call(modelId=model_id, body=raw)
    return info.value.response


# -- every family: answers, stop reasons, usage; stream equals invoke -------------------------


@pytest.mark.parametrize("max_tokens", [400, 3], ids=["natural", "length"])
@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_stream_agrees_with_invoke(client: Any, family: Family, max_tokens: int) -> None:
    body, headers = invoke(client, family.model_id, family.body(max_tokens))
    objects = stream(client, family.model_id, family.body(max_tokens))

    text = family.text(body)
    assert text, body
    assert family.stream_text(objects) == text
    expected = family.natural if max_tokens > 10 else family.length
    assert family.stop(body) == expected
    assert family.stream_stop(objects) == expected

    metrics = objects[-1][METRICS]
    assert set(metrics) >= {"inputTokenCount", "outputTokenCount", "invocationLatency"}
    assert all(METRICS not in o for o in objects[:-1])
    assert metrics["inputTokenCount"] == int(headers["x-amzn-bedrock-input-token-count"]) > 0
    assert metrics["outputTokenCount"] == int(headers["x-amzn-bedrock-output-token-count"]) > 0
    assert 0 <= metrics["firstByteLatency"] <= metrics["invocationLatency"]
    if max_tokens == 3:
        assert metrics["outputTokenCount"] == 3


def test_stream_and_invoke_of_reasoning_models_agree_including_reasoning(client: Any) -> None:
    for name in ("deepseek-r1", "gpt-oss"):
        family = BY_NAME[name]
        body, _ = invoke(client, family.model_id, family.body(400))
        assert family.stream_text(stream(client, family.model_id, family.body(400))) == (
            family.text(body)
        )


# -- stream objects have the keys, types and order of recorded real traffic --------------------


def _weather_tools_claude() -> list[Obj]:
    return [
        {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location.",
            "input_schema": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        }
    ]


def _claude(text: str, max_tokens: int = 100, **extra: Any) -> Obj:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        **extra,
    }


def _nova(text: str, **extra: Any) -> Obj:
    return {
        "schemaVersion": "messages-v1",
        "messages": [{"role": "user", "content": [{"text": text}]}],
        "inferenceConfig": {"max_new_tokens": 1000},
        **extra,
    }


NOVA_TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_current_weather",
                "description": "Get the current weather in a given location.",
                "inputSchema": {
                    "json": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}},
                        "required": ["location"],
                    }
                },
            }
        }
    ]
}

LONG = " ".join(f"word{i}" for i in range(60))

# (case, model, body, recorded stream objects)
STREAM_RECORDINGS: list[tuple[str, str, Obj, Any]] = [
    (
        "claude-text",
        "anthropic.claude-v2",
        _claude("Say this is a test"),
        lambda: stream_objects(
            "otel__test_invoke_model_with_response_stream_with_content[anthropic.claude].txt"
        ),
    ),
    (
        "claude-tool-use",
        TOOLS_MODELS[0],
        _claude("Weather in Seattle and San Francisco?", 1000, tools=_weather_tools_claude()),
        lambda: stream_objects(
            "otel__test_invoke_model_with_response_stream_with_content_tool_call"
            "[anthropic.claude].txt"
        ),
    ),
    (
        "claude-legacy",
        "anthropic.claude-instant-v1",
        {"prompt": "\n\nHuman: What is 212F in C?\n\nAssistant:", "max_tokens_to_sample": 100},
        lambda: nr_stream("anthropic.claude-instant-v1", "Human:"),
    ),
    (
        "nova-text",
        "us.amazon.nova-micro-v1:0",
        {
            "messages": [{"role": "user", "content": [{"text": "Tell me a story."}]}],
            "inferenceConfig": {"max_new_tokens": 150, "temperature": 0.7},
        },
        lambda: stream_objects("oijs__should-handle-amazon-nova-streaming.txt"),
    ),
    (
        "nova-tool-use",
        TOOLS_MODELS[1],
        _nova("Weather in Seattle and San Francisco?", toolConfig=NOVA_TOOLS),
        lambda: stream_objects(
            "otel__test_invoke_model_with_response_stream_with_content_tool_call[amazon.nova].txt"
        ),
    ),
    (
        "titan-long",
        "amazon.titan-text-express-v1",
        {"inputText": LONG, "textGenerationConfig": {"maxTokenCount": 100}},
        lambda: stream_objects("oijs__should-handle-amazon-titan-streaming.txt"),
    ),
    (
        "titan-short",
        "amazon.titan-text-express-v1",
        {"inputText": "Hello there"},
        lambda: nr_stream("amazon.titan-text-express-v1", "What"),
    ),
    (
        "llama-length",
        "meta.llama3-8b-instruct-v1:0",
        {"prompt": LONG, "max_gen_len": 20},
        lambda: stream_objects("oijs__should-handle-meta-llama-streaming.txt"),
    ),
    (
        "llama-stop",
        "meta.llama2-13b-chat-v1",
        {"prompt": "[INST] What is 212F in C? [/INST]", "max_gen_len": 200},
        lambda: nr_stream("meta.llama2-13b-chat-v1", "[INST]"),
    ),
    (
        "mistral-text",
        "mistral.mistral-7b-instruct-v0:2",
        {"prompt": LONG, "max_tokens": 20},
        lambda: nr_stream("mistral.mistral-7b-instruct-v0%3A2", "<s>"),
    ),
    (
        "cohere-command",
        "cohere.command-text-v14",
        {"prompt": "What is 212F in C?", "max_tokens": 200},
        lambda: nr_stream("cohere.command-text-v14", "What"),
    ),
]


@pytest.mark.parametrize(
    ("model", "body", "recorded"),
    [case[1:] for case in STREAM_RECORDINGS],
    ids=[case[0] for case in STREAM_RECORDINGS],
)
def test_stream_objects_match_recorded_traffic(
    client: Any, model: str, body: Obj, recorded: Any
) -> None:
    ours = stream_shape(stream(client, model, body))
    theirs = stream_shape(recorded())
    assert ours == theirs, f"ours:\n{describe(ours)}\n\nrecorded:\n{describe(theirs)}"


# (case, model, body, recorded response file, interaction)
RESPONSE_RECORDINGS: list[tuple[str, str, Obj, str, int]] = [
    (
        "claude-text",
        "anthropic.claude-v2",
        _claude("Say this is a test"),
        "otel__test_invoke_model_with_content[anthropic.claude].txt",
        0,
    ),
    (
        "claude-tool-use",
        TOOLS_MODELS[0],
        _claude("Weather in Seattle and San Francisco?", 1000, tools=_weather_tools_claude()),
        "otel__test_invoke_model_with_content_tool_call[anthropic.claude].txt",
        0,
    ),
    (
        "claude-legacy",
        "anthropic.claude-v2:1",
        {"prompt": "\n\nHuman: Tell me a joke\n\nAssistant:", "max_tokens_to_sample": 200},
        "traceloop__test_anthropic_2_completion.txt",
        0,
    ),
    (
        "nova-tool-use",
        TOOLS_MODELS[1],
        _nova("Weather in Seattle and San Francisco?", toolConfig=NOVA_TOOLS),
        "otel__test_invoke_model_with_content_tool_call[amazon.nova].txt",
        0,
    ),
    (
        "titan",
        "amazon.titan-text-lite-v1",
        {"inputText": "Say this is a test", "textGenerationConfig": {"maxTokenCount": 10}},
        "otel__test_invoke_model_with_content[amazon.titan].txt",
        0,
    ),
    (
        "llama",
        "meta.llama3-1-70b-instruct-v1:0",
        {"prompt": "Say this is a test", "max_gen_len": 10},
        "otel__test_invoke_model_with_content[meta.llama].txt",
        0,
    ),
    (
        "mistral-text",
        "mistral.mistral-7b-instruct-v0:2",
        {"prompt": "Say this is a test", "max_tokens": 10, "stop": ["|"]},
        "otel__test_invoke_model_with_content[mistral.mistral].txt",
        0,
    ),
    (
        "cohere-command",
        "cohere.command-light-text-v14",
        {"prompt": "Say this is a test", "max_tokens": 10, "stop_sequences": ["|"]},
        "otel__test_invoke_model_with_content[cohere.command].txt",
        0,
    ),
    (
        "cohere-command-r",
        "cohere.command-r-v1:0",
        {"message": "Say this is a test", "max_tokens": 10, "p": 0.99},
        "otel__test_invoke_model_with_content[cohere.command-r].txt",
        0,
    ),
    (
        "jamba",
        "ai21.jamba-1-5-mini-v1:0",
        {"messages": [{"role": "user", "content": "Hello, how are you?"}], "max_tokens": 100},
        "oijs__should-handle-ai21-jamba-models.txt",
        0,
    ),
]


@pytest.mark.parametrize(
    ("model", "body", "recording", "interaction"),
    [case[1:] for case in RESPONSE_RECORDINGS],
    ids=[case[0] for case in RESPONSE_RECORDINGS],
)
def test_response_body_matches_recorded_traffic(
    client: Any, model: str, body: Obj, recording: str, interaction: int
) -> None:
    ours, _ = invoke(client, model, body)
    theirs = response_body(recording, interaction)
    assert shape(ours) == shape(theirs), f"ours: {ours}\nrecorded: {theirs}"


# -- tool use ----------------------------------------------------------------------------------


def test_claude_tool_use_round_trip(client: Any) -> None:
    model = "anthropic.claude-3-haiku-20240307-v1:0"
    tools = _weather_tools_claude()
    body = _claude("Weather in Paris?", tools=tools, tool_choice={"type": "any"})
    answer, _ = invoke(client, model, body)
    assert answer["stop_reason"] == "tool_use"
    [call] = answer["content"]
    assert call["type"] == "tool_use" and call["name"] == "get_current_weather"
    assert call["id"].startswith("toolu_bdrk_01") and len(call["id"]) == len("toolu_bdrk_") + 24
    assert call["input"] == {"location": "scripted"}

    objects = stream(client, model, body)
    deltas = [
        o["delta"]["partial_json"]
        for o in objects
        if o["type"] == "content_block_delta" and o["delta"]["type"] == "input_json_delta"
    ]
    assert deltas[0] == "" and len(deltas) > 2
    assert json.loads("".join(deltas)) == {"location": "scripted"}
    start = next(o for o in objects if o["type"] == "content_block_start")
    assert start["content_block"]["type"] == "tool_use" and start["content_block"]["input"] == {}

    follow_up = _claude("Weather in Paris?", tools=tools)
    follow_up["messages"] += [
        {"role": "assistant", "content": [call]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "Sunny"}],
        },
    ]
    final, _ = invoke(client, model, follow_up)
    assert final["stop_reason"] == "end_turn"
    assert final["content"] == [{"type": "text", "text": "Echo: Sunny"}]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "tool_use"),
        ({"type": "none"}, "end_turn"),
        ({"type": "tool", "name": "get_time"}, "tool_use"),
    ],
)
def test_claude_tool_choice(client: Any, choice: Obj, expected: str) -> None:
    tools = [
        *_weather_tools_claude(),
        {"name": "get_time", "description": "Time", "input_schema": {"type": "object"}},
    ]
    answer, _ = invoke(
        client,
        "anthropic.claude-3-haiku-20240307-v1:0",
        _claude("Hi", tools=tools, tool_choice=choice),
    )
    assert answer["stop_reason"] == expected
    if choice["type"] == "tool":
        assert answer["content"][0]["name"] == "get_time"


def test_claude_tool_result_without_tool_use_is_rejected(client: Any) -> None:
    body = _claude("Hi", tools=_weather_tools_claude())
    body["messages"] = [
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "?"}],
        }
    ]
    error = bedrock_error(client, "anthropic.claude-3-haiku-20240307-v1:0", body)
    assert error["Error"]["Code"] == "ValidationException"
    assert error["Error"]["Message"].startswith(
        "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_x."
    )


def test_nova_tool_use_round_trip(client: Any) -> None:
    model = "amazon.nova-lite-v1:0"
    body = _nova("Weather in Paris?", toolConfig={**NOVA_TOOLS, "toolChoice": {"any": {}}})
    answer, headers = invoke(client, model, body)
    assert answer["stopReason"] == "tool_use"
    [use] = [c["toolUse"] for c in answer["output"]["message"]["content"] if "toolUse" in c]
    assert use["input"] == {"location": "scripted"} and len(use["toolUseId"]) == 36
    assert headers["x-amzn-bedrock-cache-read-input-token-count"] == "0"

    objects = stream(client, model, body)
    start = next(o["contentBlockStart"] for o in objects if "contentBlockStart" in o)
    assert start["start"]["toolUse"]["name"] == "get_current_weather"
    inputs = [
        o["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for o in objects
        if "contentBlockDelta" in o and "toolUse" in o["contentBlockDelta"]["delta"]
    ]
    assert [json.loads(i) for i in inputs] == [{"location": "scripted"}]
    assert objects[-2] == {"messageStop": {"stopReason": "tool_use"}}

    body["messages"] += [
        {"role": "assistant", "content": [{"toolUse": use}]},
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"t": 21}}]}}
            ],
        },
    ]
    final, _ = invoke(client, model, body)
    assert final["stopReason"] == "end_turn"
    assert final["output"]["message"]["content"] == [{"text": 'Echo: {"t": 21}'}]


OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Weather",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
    }
]


@pytest.mark.parametrize(
    ("model", "stop_key"),
    [
        ("openai.gpt-oss-120b-1:0", "finish_reason"),
        ("mistral.mistral-large-2407-v1:0", "stop_reason"),
        ("ai21.jamba-1-5-large-v1:0", "finish_reason"),
    ],
)
def test_chat_completions_tool_calls(client: Any, model: str, stop_key: str) -> None:
    body: Obj = {
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": OPENAI_TOOLS,
        "max_tokens": 200,
    }
    answer, _ = invoke(client, model, body)
    choice = answer["choices"][0]
    assert choice[stop_key] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_current_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "scripted"}

    objects = stream(client, model, body)
    assert objects[-1]["choices"][0][stop_key] == "tool_calls"

    body["messages"] += [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Rain"},
    ]
    final, _ = invoke(client, model, body)
    assert final["choices"][0][stop_key] == "stop"
    assert final["choices"][0]["message"]["content"].endswith("Echo: Rain")


def test_cohere_command_r_tool_calls_and_results(client: Any) -> None:
    tools = [
        {
            "name": "get_weather",
            "description": "Weather",
            "parameter_definitions": {"city": {"type": "str", "description": "", "required": True}},
        }
    ]
    body: Obj = {"message": "Weather in Paris?", "tools": tools}
    answer, _ = invoke(client, "cohere.command-r-v1:0", body)
    assert answer["tool_calls"] == [{"name": "get_weather", "parameters": {"city": "scripted"}}]
    objects = stream(client, "cohere.command-r-v1:0", body)
    assert [o["event_type"] for o in objects] == [
        "stream-start",
        "tool-calls-generation",
        "stream-end",
    ]
    assert all("is_finished" in o for o in objects) and objects[-1]["is_finished"] is True

    body["tool_results"] = [{"call": answer["tool_calls"][0], "outputs": [{"weather": "cold"}]}]
    final, _ = invoke(client, "cohere.command-r-v1:0", body)
    assert "tool_calls" not in final and "cold" in final["text"]


# -- reasoning ---------------------------------------------------------------------------------


def test_claude_extended_thinking(client: Any) -> None:
    model = "us.anthropic.claude-sonnet-4-20250514-v1:0"
    body = _claude(
        "Why is the sky blue?", 3000, thinking={"type": "enabled", "budget_tokens": 1024}
    )
    answer, _ = invoke(client, model, body)
    thinking, text = answer["content"]
    assert thinking["type"] == "thinking"
    assert thinking["thinking"] == "Thinking about: Why is the sky blue?"
    assert thinking["signature"]
    assert text == {"type": "text", "text": "Echo: Why is the sky blue?"}

    objects = stream(client, model, body)
    kinds = [
        (o["type"], o.get("index"), (o.get("delta") or o.get("content_block") or {}).get("type"))
        for o in objects
    ]
    assert kinds[:3] == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
    ]
    signature_at = kinds.index(("content_block_delta", 0, "signature_delta"))
    assert kinds[signature_at + 1 : signature_at + 3] == [
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"),
    ]
    streamed = "".join(
        o["delta"]["thinking"]
        for o in objects
        if o.get("delta", {}).get("type") == "thinking_delta"
    )
    assert streamed == thinking["thinking"]
    assert objects[signature_at]["delta"]["signature"] == thinking["signature"]

    plain, _ = invoke(client, model, _claude("Why is the sky blue?"))
    assert [b["type"] for b in plain["content"]] == ["text"]


def test_deepseek_and_gpt_oss_show_reasoning_inline(client: Any) -> None:
    r1, _ = invoke(client, "us.deepseek.r1-v1:0", BY_NAME["deepseek-r1"].body(400))
    assert r1["choices"][0]["text"] == f"Thinking about: {PROMPT}\n</think>\n\nEcho: {PROMPT}"
    oss, _ = invoke(client, "openai.gpt-oss-20b-1:0", BY_NAME["gpt-oss"].body(400))
    content = oss["choices"][0]["message"]["content"]
    assert content.startswith("<reasoning>Thinking about: ") and "</reasoning>Echo: " in content


def test_nova_2_reasoning_content(client: Any) -> None:
    body = _nova("Why?", inferenceConfig={"maxTokens": 100, "reasoningConfig": {"type": "enabled"}})
    answer, _ = invoke(client, "global.amazon.nova-2-lite-v1:0", body)
    content = answer["output"]["message"]["content"]
    assert content[0] == {"reasoningContent": {"reasoningText": {"text": "Thinking about: Why?"}}}
    assert content[1] == {"text": "Echo: Why?"}


# -- raw prompts: chat markup becomes turns, plain text stays raw ------------------------------


def test_llama_prompt_markup_becomes_turns_and_plain_text_stays_raw(client: Any) -> None:
    model = "meta.llama3-70b-instruct-v1:0"
    chat = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nFirst question<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nFirst answer<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    answer, _ = invoke(client, model, {"prompt": chat})
    assert answer["generation"] == "Echo: What is 2+2?"
    plain, _ = invoke(client, model, {"prompt": "Say this is a test"})
    assert plain["generation"] == "Echo: Say this is a test"


# -- bad bodies get Bedrock's messages ---------------------------------------------------------

BAD_BODIES: list[tuple[str, str, Any, str]] = [
    (
        "claude-model-and-stream",
        "anthropic.claude-3-haiku-20240307-v1:0",
        {**_claude("hi"), "stream": True, "model": "x"},
        'Malformed input request: #: subject must not be valid against schema {"required":'
        '["messages"]}#: extraneous key [stream] is not permitted#: extraneous key [model] is '
        "not permitted, please reformat your input and try again.",
    ),
    (
        "claude-tool-without-schema",
        "anthropic.claude-3-haiku-20240307-v1:0",
        {**_claude("hi"), "tools": [{"name": "x"}]},
        'Malformed input request: #: subject must not be valid against schema {"required":'
        '["messages"]}#/tools/0: required key [input_schema] not found, please reformat your '
        "input and try again.",
    ),
    (
        "nova-extraneous",
        "amazon.nova-micro-v1:0",
        {**_nova("hi"), "max_tokens": 5},
        "Malformed input request: #: extraneous key [max_tokens] is not permitted, please "
        "reformat your input and try again.",
    ),
    (
        "nova-tool-schema-key",
        "amazon.nova-micro-v1:0",
        _nova(
            "hi", toolConfig={"tools": [{"toolSpec": {"name": "x", "inputSchema": {"schema": {}}}}]}
        ),
        "Malformed input request: #/toolConfig/tools/0/toolSpec/inputSchema: required key [json] "
        "not found#/toolConfig/tools/0/toolSpec/inputSchema: extraneous key [schema] is not "
        "permitted, please reformat your input and try again.",
    ),
    (
        "titan-embeddings-style",
        "amazon.titan-text-express-v1",
        {"inputText": "", "dimensions": 256},
        "Malformed input request: 2 schema violations found, please reformat your input and try "
        "again.",
    ),
    (
        "titan-empty",
        "amazon.titan-text-express-v1",
        {"inputText": ""},
        "Malformed input request: expected minLength: 1, actual: 0, please reformat your input "
        "and try again.",
    ),
    (
        "llama-max-gen-len",
        "meta.llama3-8b-instruct-v1:0",
        {"prompt": "hi", "max_gen_len": 5000},
        "Malformed input request: #/max_gen_len: 5000 is not less or equal to 2048, please "
        "reformat your input and try again.",
    ),
    (
        "mistral-text-messages",
        "mistral.mistral-7b-instruct-v0:2",
        {"messages": [{"role": "user", "content": "hi"}]},
        "Malformed input request: #: required key [prompt] not found#: extraneous key [messages] "
        "is not permitted, please reformat your input and try again.",
    ),
    (
        "mistral-chat-role",
        "mistral.mistral-large-2407-v1:0",
        {"messages": [{"role": "robot", "content": "hi"}]},
        "Malformed input request: #/messages/0/role: robot is not a valid enum value, please "
        "reformat your input and try again.",
    ),
    (
        "cohere-r-prompt",
        "cohere.command-r-v1:0",
        {"prompt": "hi"},
        "Malformed input request: #: required key [message] not found#: extraneous key [prompt] "
        "is not permitted, please reformat your input and try again.",
    ),
    (
        "cohere-command-type",
        "cohere.command-text-v14",
        {"prompt": "hi", "max_tokens": "ten"},
        "Malformed input request: #/max_tokens: expected type: Integer, found: String, please "
        "reformat your input and try again.",
    ),
    (
        "jamba-temperature",
        "ai21.jamba-1-5-mini-v1:0",
        {"messages": [{"role": "user", "content": "hi"}], "temperature": 3},
        "Malformed input request: #/temperature: 3 is not less or equal to 2, please reformat "
        "your input and try again.",
    ),
    (
        "deepseek-stop-count",
        "us.deepseek.r1-v1:0",
        {"prompt": "hi", "stop": [str(i) for i in range(11)]},
        "Malformed input request: #/stop: expected maximum item count: 10, found: 11, please "
        "reformat your input and try again.",
    ),
    (
        "gpt-oss-unknown-key",
        "openai.gpt-oss-20b-1:0",
        {"messages": [{"role": "user", "content": "hi"}], "foo": 1, "reasoning_effort": "max"},
        "Malformed input request: #: extraneous key [foo] is not permitted#/reasoning_effort: "
        "max is not a valid enum value, please reformat your input and try again.",
    ),
    (
        "not-json",
        "amazon.titan-text-express-v1",
        "{ Malformed Request Body",
        "Malformed input request, please reformat your input and try again.",
    ),
]


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
@pytest.mark.parametrize(
    ("model", "body", "message"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_bad_bodies_get_bedrock_messages(
    client: Any, model: str, body: Any, message: str, streaming: bool
) -> None:
    error = bedrock_error(client, model, body, streaming)
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "ValidationException"
    assert error["Error"]["Message"] == message
    assert error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"].startswith(
        "ValidationException:"
    )


def test_gpt_oss_stream_flag_must_match_the_operation(client: Any) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    error = bedrock_error(client, "openai.gpt-oss-20b-1:0", body)
    assert error["Error"]["Code"] == "ValidationException"
    assert (
        stream(client, "openai.gpt-oss-20b-1:0", body)[-1]["choices"][0]["finish_reason"] == "stop"
    )
