"""Writer Palmyra's InvokeModel body (AWS's model parameters pages for Palmyra X4 and X5)."""

from __future__ import annotations

from typing import Any

import pytest

from outcrop.dialects.base import Completion, InvokeCall
from outcrop.dialects.writer import DEFAULT_MAX_TOKENS, PalmyraDialect
from outcrop.types import ChatMessage, Finish, StopReason, Usage
from outcrop.wire.errors import ValidationException

X5 = "writer.palmyra-x5-v1:0"


def parse(body: dict[str, Any]) -> Any:
    return PalmyraDialect().parse(body, InvokeCall("r", X5))


def test_awss_example_body() -> None:
    """AWS's example: content as an object with `text`; max_tokens defaults to 16."""
    parsed = parse(
        {"messages": [{"role": "user", "content": {"text": "Explain quantum computing"}}]}
    )
    assert parsed.request.messages == (ChatMessage("user", "Explain quantum computing"),)
    assert parsed.request.sampling.max_tokens == DEFAULT_MAX_TOKENS == 16


def test_every_parameter() -> None:
    parsed = parse(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            ],
            "temperature": 0.5,
            "top_p": 0.9,
            "max_tokens": 100,
            "min_tokens": 1,
            "stop": ["END"],
            "seed": 7,
            "presence_penalty": 0.1,
            "frequency_penalty": -0.1,
        }
    )
    sampling = parsed.request.sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.top_p) == (100, 0.5, 0.9)
    assert (sampling.stop_sequences, sampling.seed) == (("END",), 7)
    assert parsed.request.system == "Be brief."


@pytest.mark.parametrize(
    ("body", "violation"),
    [
        ({}, "#: required key [messages] not found"),
        ({"messages": []}, "#/messages: expected minimum item count: 1, found: 0"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 9000}, "#/max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 3}, "#/temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "stop": ["a"] * 5}, "#/stop"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "#/messages/0/role"),
        ({"messages": [{"role": "user", "content": 5}]}, "#/messages/0/content"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": []}, "extraneous key [tools]"),
    ],
)
def test_malformed_bodies(body: dict[str, Any], violation: str) -> None:
    with pytest.raises(ValidationException) as raised:
        parse(body)
    assert raised.value.message.startswith("Malformed input request: ")
    assert violation in raised.value.message


def test_response_and_stream_shapes() -> None:
    parsed = parse({"messages": [{"role": "user", "content": "x"}]})
    finish = Finish(StopReason.MAX_TOKENS, 5, 16)
    body = parsed.response(Completion("Quantum", "", (), finish), X5)
    assert body["object"] == "chat.completion" and body["model"] == X5
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "reasoning_content": None,
        "content": "Quantum",
        "tool_calls": [],
    }
    assert (choice["finish_reason"], choice["stop_reason"]) == ("length", None)
    assert body["usage"] == {
        "prompt_tokens": 5,
        "total_tokens": 21,
        "completion_tokens": 16,
        "prompt_tokens_details": None,
    }
    stream = parsed.stream(X5, 5)
    first = stream.start()[0]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    last = stream.finish(Finish(StopReason.END_TURN, 5, 3), Usage(5, 3, 10, 2))[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 3
