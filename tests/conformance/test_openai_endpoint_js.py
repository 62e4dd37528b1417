"""Bedrock's OpenAI-compatible Chat Completions endpoint with the official `openai` npm package
(`js/openai_client.mjs`) pointed at `http://127.0.0.1:PORT/openai/v1`."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tests.conformance.jsclient import JS_DIR, JsRun, run_js
from tests.conformance.test_openai_endpoint import GPT_OSS, QWEN, SCHEMA, WEATHER
from tests.support.server import ServerProcess

pytestmark = pytest.mark.node

SCRIPT = JS_DIR / "openai_client.mjs"


def chat(server: ServerProcess, **request: Any) -> JsRun:
    return run_js({"baseURL": f"{server.url}/openai/v1", "request": request}, script=SCRIPT)


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_js_completion_and_stream_with_usage(scripted_server: ServerProcess) -> None:
    done = chat(scripted_server, model=GPT_OSS, messages=ask("basalt"), max_tokens=50).final
    completion = done["completion"]
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "Echo: basalt"
    assert completion["usage"]["completion_tokens"] > 0
    run = chat(
        scripted_server,
        model=QWEN,
        messages=ask("one two three"),
        stream=True,
        stream_options={"include_usage": True},
    )
    assert run.final == {"done": True, "completion": None}
    chunks = [line["chunk"] for line in run.lines if "chunk" in line]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Echo: one two three"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_js_tool_call_stream(scripted_server: ServerProcess) -> None:
    run = chat(
        scripted_server,
        model=QWEN,
        messages=ask("Weather in Lima?"),
        tools=[WEATHER],
        tool_choice="required",
        stream=True,
    )
    chunks = [line["chunk"] for line in run.lines if "chunk" in line]
    deltas = [
        call
        for c in chunks
        if c["choices"]
        for call in c["choices"][0]["delta"].get("tool_calls") or []
    ]
    assert deltas[0]["function"]["name"] == "get_weather" and deltas[0]["id"].startswith("call_")
    arguments = "".join(d["function"].get("arguments") or "" for d in deltas)
    assert json.loads(arguments) == {"city": "scripted"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_js_structured_output_and_errors(scripted_server: ServerProcess) -> None:
    done = chat(
        scripted_server,
        model=GPT_OSS,
        messages=ask("Best city?"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "City", "schema": SCHEMA, "strict": True},
        },
    ).final
    jsonschema.validate(json.loads(done["completion"]["choices"][0]["message"]["content"]), SCHEMA)
    error = chat(scripted_server, model="acme.nothing-v1", messages=ask("x")).final["error"]
    assert error["status"] == 400
    assert error["name"] == "BadRequestError"
    assert error["code"] == "ValidationException"
    assert error["body"]["message"] == "The provided model identifier is invalid."
