"""Bedrock's OpenAI-compatible Chat Completions endpoint with the official `openai` Python SDK
pointed at `http://127.0.0.1:PORT/openai/v1` (docs/openai-endpoint.md): answers, streams with
usage, tools, structured outputs, errors in OpenAI's shape; Bedrock API keys over TLS and SigV4
verified, quotas applied."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import jsonschema
import openai
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageFunctionToolCallParam,
)

from tests.support.server import ServerProcess, running_server

GPT_OSS = "openai.gpt-oss-20b-1:0"
QWEN = "qwen.qwen3-32b-v1:0"
API_KEY = "bedrock-api-key-" + "A" * 40
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "rank": {"type": "integer", "minimum": 1}},
    "required": ["city", "rank"],
    "additionalProperties": False,
}
WEATHER: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

VERIFY_CONFIG = f"""
[engines.default]
type = "scripted"

[auth]
mode = "verify"
regions = ["us-east-1"]

[[auth.credentials]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "{SECRET}"
principal = "alice"

[[auth.api_keys]]
key = "{API_KEY}"
principal = "ci-bot"

[principals.alice]
policies = ["invoke-all"]

[principals.ci-bot]
policies = ["invoke-all"]

[policies.invoke-all]
Version = "2012-10-17"
[[policies.invoke-all.Statement]]
Effect = "Allow"
Action = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
Resource = "*"

[[quotas]]
model = "{QWEN}"
requests_per_minute = 1
"""


def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key=API_KEY, max_retries=0)


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def verify_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]
) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("openai") / "outcrop.toml"
    config.write_text(VERIFY_CONFIG)
    with running_server(["--config", str(config)], tls=tls_files) as server:
        yield server


def test_chat_completion(scripted_server: ServerProcess) -> None:
    completion = client(scripted_server).chat.completions.create(
        model=GPT_OSS,
        messages=[{"role": "developer", "content": "Be brief."}, *ask("basalt")],
        max_completion_tokens=50,
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == GPT_OSS
    choice = completion.choices[0]
    assert choice.message.content == "Echo: basalt"
    assert choice.finish_reason == "stop"
    # gpt-oss reasons; its reasoning is beside the answer, not inside it
    assert (choice.message.model_extra or {})["reasoning_content"].startswith("Thinking about")
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_stream_with_usage(scripted_server: ServerProcess) -> None:
    stream = client(scripted_server).chat.completions.create(
        model=QWEN,
        messages=ask("one two three"),
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(finishes) - 2  # role chunk, finish chunk
    without = list(
        client(scripted_server).chat.completions.create(
            model=QWEN, messages=ask("x"), max_tokens=5, stream=True
        )
    )
    assert all(c.usage is None for c in without)


def test_max_tokens_is_length(scripted_server: ServerProcess) -> None:
    completion = client(scripted_server).chat.completions.create(
        model=QWEN, messages=ask("one two three four five"), max_tokens=2
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 2


def test_tool_calls_streamed_and_not(scripted_server: ServerProcess) -> None:
    sdk = client(scripted_server)
    completion = sdk.chat.completions.create(
        model=QWEN, messages=ask("Weather in Lima?"), tools=[WEATHER], tool_choice="required"
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = cast(ChatCompletionMessageFunctionToolCall, choice.message.tool_calls[0])
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "scripted"}
    with sdk.chat.completions.stream(
        model=QWEN, messages=ask("Weather in Lima?"), tools=[WEATHER], tool_choice="required"
    ) as stream:
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls
    assert streamed is not None and json.loads(streamed[0].function.arguments) == {
        "city": "scripted"
    }
    answer = sdk.chat.completions.create(
        model=QWEN,
        messages=[
            *ask("Weather in Lima?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [cast(ChatCompletionMessageFunctionToolCallParam, call.model_dump())],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
        ],
        tools=[WEATHER],
    )
    assert answer.choices[0].message.content == "Echo: Sunny"


def test_structured_output_parses(scripted_server: ServerProcess) -> None:
    completion = client(scripted_server).chat.completions.create(
        model=GPT_OSS,
        messages=ask("Best city?"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "City", "schema": SCHEMA, "strict": True},
        },
    )
    content = completion.choices[0].message.content
    assert content is not None
    jsonschema.validate(json.loads(content), SCHEMA)


def test_errors_in_openai_shape(scripted_server: ServerProcess) -> None:
    sdk = client(scripted_server)
    with pytest.raises(openai.BadRequestError) as unknown:
        sdk.chat.completions.create(model="acme.nothing-v1", messages=ask("x"))
    assert unknown.value.status_code == 400
    assert unknown.value.body == {
        "message": "The provided model identifier is invalid.",
        "type": "invalid_request_error",
        "param": None,
        "code": "ValidationException",
    }
    with pytest.raises(openai.BadRequestError) as claude:
        sdk.chat.completions.create(
            model="anthropic.claude-3-haiku-20240307-v1:0", messages=ask("x")
        )
    assert "isn't supported by the Chat Completions API" in claude.value.message
    with pytest.raises(openai.BadRequestError) as malformed:
        sdk.chat.completions.create(model=QWEN, messages=[])
    assert malformed.value.code == "ValidationException"


def test_bearer_api_key_over_tls(
    verify_server: ServerProcess, tls_files: tuple[Path, Path]
) -> None:
    assert verify_server.tls_port is not None
    http = openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=str(tls_files[0])))
    sdk = openai.OpenAI(
        base_url=f"{verify_server.tls_url}/openai/v1", api_key=API_KEY, http_client=http
    )
    completion = sdk.chat.completions.create(model=GPT_OSS, messages=ask("tuff"), max_tokens=20)
    assert completion.choices[0].message.content == "Echo: tuff"
    wrong = openai.OpenAI(
        base_url=f"{verify_server.tls_url}/openai/v1",
        api_key="bedrock-api-key-wrong",
        http_client=http,
        max_retries=0,
    )
    with pytest.raises(openai.APIStatusError) as refused:
        wrong.chat.completions.create(model=GPT_OSS, messages=ask("tuff"))
    assert refused.value.status_code in (401, 403)
    assert set(cast(dict[str, Any], refused.value.body)) == {"message", "type", "param", "code"}


def signed(server: ServerProcess, secret: str, body: dict[str, Any]) -> tuple[int, Any]:
    url = f"{server.url}/openai/v1/chat/completions"
    request = AWSRequest(
        "POST", url, data=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials("AKIDEXAMPLE", secret), "bedrock", "us-east-1").add_auth(request)
    prepared = urllib.request.Request(
        url, data=request.body, headers=dict(request.headers.items()), method="POST"
    )
    try:
        with urllib.request.urlopen(prepared, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_sigv4_and_quotas(verify_server: ServerProcess) -> None:
    body = {"model": GPT_OSS, "messages": ask("pumice"), "max_tokens": 20}
    status, answer = signed(verify_server, SECRET, body)
    assert status == 200 and answer["choices"][0]["message"]["content"] == "Echo: pumice"
    status, answer = signed(verify_server, "not-the-secret", body)
    assert status == 403
    assert answer["error"]["code"] == "InvalidSignatureException"
    # one request a minute on Qwen: the second is throttled, as InvokeModel would be
    first, _ = signed(verify_server, SECRET, {**body, "model": QWEN})
    second, throttled = signed(verify_server, SECRET, {**body, "model": QWEN})
    assert (first, second) == (200, 429)
    assert throttled["error"]["type"] == "rate_limit_error"
    assert throttled["error"]["code"] == "ThrottlingException"
