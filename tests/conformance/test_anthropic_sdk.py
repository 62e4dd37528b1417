"""Claude Messages through the `anthropic` SDK's Bedrock client (`AnthropicBedrock`) against
`outcrop serve` (scripted engine) as a process: the SDK builds full messages, tool calls and
thinking blocks out of our stream events exactly as it does from AWS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.server import ServerProcess, running_server

anthropic = pytest.importorskip("anthropic")

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server(["--engine", "scripted"]) as proc:
        yield proc


@pytest.fixture
def client(server: ServerProcess) -> Any:
    return anthropic.AnthropicBedrock(
        aws_access_key="AKIDEXAMPLE",
        aws_secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        aws_region="us-east-1",
        base_url=server.url,
        max_retries=0,
    )


def test_create_and_stream_give_the_same_message(client: Any) -> None:
    kwargs = {
        "model": MODEL,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "Hello there"}],
    }
    created = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        streamed = stream.get_final_message()
    assert created.content[0].text == text == streamed.content[0].text == "Echo: Hello there"
    assert created.stop_reason == streamed.stop_reason == "end_turn"
    assert streamed.usage.output_tokens == created.usage.output_tokens
    assert streamed.id.startswith("msg_bdrk_")


def test_tool_use_stream_accumulates_the_input(client: Any) -> None:
    with client.messages.stream(
        model=MODEL,
        max_tokens=200,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        message = stream.get_final_message()
    [block] = message.content
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.input == {"city": "scripted"}
    assert message.stop_reason == "tool_use"

    answer = client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": [block.model_dump()]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "Snow"}],
            },
        ],
    )
    assert answer.content[0].text == "Echo: Snow" and answer.stop_reason == "end_turn"


def test_thinking_stream_gives_thinking_block_with_signature(client: Any) -> None:
    with client.messages.stream(
        model="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Why is the sea salty?"}],
    ) as stream:
        message = stream.get_final_message()
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking.startswith("Thinking about:")
    assert thinking.signature
    assert text.type == "text" and text.text == "Echo: Why is the sea salty?"
