"""One InvokeModel request per model family, and how to read the answer text back out of that
family's response body and stream objects; shared by the boto3 and JS SDK dialect tests.

`server_config()` is the TOML of the test server: the scripted engine echoes (`Echo: <last user
text>`) for every model except two routed to a scripted engine that answers with text and then
two tool calls, as in the recorded tool-use traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

TOOLS_MODELS = ("anthropic.claude-3-5-sonnet-20240620-v1:0", "amazon.nova-micro-v1:0")
PROMPT = "Tell me a short story about a lighthouse keeper and a storm at sea tonight."


def server_config() -> str:
    routes = "".join(f'\n[[models]]\nmatch = "{m}"\nengine = "tools"\n' for m in TOOLS_MODELS)
    return f"""
[engines.default]
type = "scripted"

[engines.tools]
type = "scripted"
text = "Certainly! I will check the weather for both cities."
tool_calls = [
  {{ name = "get_current_weather", arguments = '{{"location": "Seattle"}}' }},
  {{ name = "get_current_weather", arguments = '{{"location": "San Francisco"}}' }},
]
{routes}
[[models]]
match = "*"
engine = "default"
"""


@dataclass(frozen=True)
class Family:
    """A family's request body (for a given max tokens) and its text and stop readers."""

    name: str
    model_id: str
    body: Callable[[int], Obj]
    text: Callable[[Obj], str]
    stream_text: Callable[[list[Obj]], str]
    stop: Callable[[Obj], Any]
    stream_stop: Callable[[list[Obj]], Any]
    natural: Any
    """The stop value when the model ends on its own."""
    length: Any
    """The stop value when max tokens cut the answer."""


def _claude_text(body: Obj) -> str:
    return "".join(b["text"] for b in body["content"] if b["type"] == "text")


def _claude_stream(objs: list[Obj]) -> str:
    return "".join(
        o["delta"]["text"]
        for o in objs
        if o["type"] == "content_block_delta" and o["delta"]["type"] == "text_delta"
    )


def _claude_stream_stop(objs: list[Obj]) -> Any:
    return next(o["delta"]["stop_reason"] for o in objs if o["type"] == "message_delta")


def _nova_stream(objs: list[Obj]) -> str:
    return "".join(
        o["contentBlockDelta"]["delta"].get("text", "") for o in objs if "contentBlockDelta" in o
    )


def _nova_stream_stop(objs: list[Obj]) -> Any:
    return next(o["messageStop"]["stopReason"] for o in objs if "messageStop" in o)


def _messages(max_tokens_key: str, max_tokens: int, **extra: Any) -> Obj:
    return {"messages": [{"role": "user", "content": PROMPT}], max_tokens_key: max_tokens, **extra}


FAMILIES: tuple[Family, ...] = (
    Family(
        "claude-messages",
        "anthropic.claude-3-haiku-20240307-v1:0",
        lambda n: {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": n,
            "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
        },
        _claude_text,
        _claude_stream,
        lambda b: b["stop_reason"],
        _claude_stream_stop,
        "end_turn",
        "max_tokens",
    ),
    Family(
        "claude-legacy",
        "anthropic.claude-v2:1",
        lambda n: {"prompt": f"\n\nHuman: {PROMPT}\n\nAssistant:", "max_tokens_to_sample": n},
        lambda b: b["completion"],
        lambda objs: "".join(o["completion"] for o in objs),
        lambda b: b["stop_reason"],
        lambda objs: objs[-1]["stop_reason"],
        "stop_sequence",
        "max_tokens",
    ),
    Family(
        "nova-max_new_tokens",
        "amazon.nova-lite-v1:0",
        lambda n: {
            "schemaVersion": "messages-v1",
            "messages": [{"role": "user", "content": [{"text": PROMPT}]}],
            "inferenceConfig": {"max_new_tokens": n},
        },
        lambda b: "".join(c.get("text", "") for c in b["output"]["message"]["content"]),
        _nova_stream,
        lambda b: b["stopReason"],
        _nova_stream_stop,
        "end_turn",
        "max_tokens",
    ),
    Family(
        "nova-maxTokens",
        "us.amazon.nova-pro-v1:0",
        lambda n: {
            "messages": [{"role": "user", "content": [{"text": PROMPT}]}],
            "system": [{"text": "Be brief."}],
            "inferenceConfig": {"maxTokens": n, "temperature": 0.5},
        },
        lambda b: "".join(c.get("text", "") for c in b["output"]["message"]["content"]),
        _nova_stream,
        lambda b: b["stopReason"],
        _nova_stream_stop,
        "end_turn",
        "max_tokens",
    ),
    Family(
        "titan",
        "amazon.titan-text-express-v1",
        lambda n: {"inputText": PROMPT, "textGenerationConfig": {"maxTokenCount": n}},
        lambda b: b["results"][0]["outputText"],
        lambda objs: "".join(o["outputText"] for o in objs),
        lambda b: b["results"][0]["completionReason"],
        lambda objs: objs[-1]["completionReason"],
        "FINISH",
        "LENGTH",
    ),
    Family(
        "llama",
        "meta.llama3-1-8b-instruct-v1:0",
        lambda n: {
            "prompt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
            f"{PROMPT}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            "max_gen_len": n,
            "temperature": 0.5,
        },
        lambda b: b["generation"],
        lambda objs: "".join(o["generation"] for o in objs),
        lambda b: b["stop_reason"],
        lambda objs: objs[-1]["stop_reason"],
        "stop",
        "length",
    ),
    Family(
        "mistral-text",
        "mistral.mistral-7b-instruct-v0:2",
        lambda n: {"prompt": f"<s>[INST] {PROMPT} [/INST]", "max_tokens": n, "top_k": 50},
        lambda b: b["outputs"][0]["text"],
        lambda objs: "".join(o["outputs"][0]["text"] for o in objs),
        lambda b: b["outputs"][0]["stop_reason"],
        lambda objs: objs[-1]["outputs"][0]["stop_reason"],
        "stop",
        "length",
    ),
    Family(
        "mistral-chat",
        "mistral.mistral-large-2407-v1:0",
        lambda n: _messages("max_tokens", n),
        lambda b: b["choices"][0]["message"]["content"],
        lambda objs: "".join(o["choices"][0]["message"]["content"] for o in objs),
        lambda b: (b["choices"][0]["stop_reason"], b["choices"][0]["finish_reason"]),
        lambda objs: (
            objs[-1]["choices"][0]["stop_reason"],
            objs[-1]["choices"][0]["finish_reason"],
        ),
        ("stop", "stop"),
        ("length", "length"),
    ),
    Family(
        "cohere-command-r",
        "cohere.command-r-plus-v1:0",
        lambda n: {
            "message": PROMPT,
            "chat_history": [
                {"role": "USER", "message": "Hello"},
                {"role": "CHATBOT", "message": "Hi! How can I help?"},
            ],
            "max_tokens": n,
        },
        lambda b: b["text"],
        lambda objs: "".join(o["text"] for o in objs if o["event_type"] == "text-generation"),
        lambda b: b["finish_reason"],
        lambda objs: objs[-1]["finish_reason"],
        "COMPLETE",
        "MAX_TOKENS",
    ),
    Family(
        "cohere-command",
        "cohere.command-text-v14",
        lambda n: {"prompt": PROMPT, "max_tokens": n, "temperature": 0.5, "p": 0.9},
        lambda b: b["generations"][0]["text"],
        lambda objs: "".join(o["generations"][0]["text"] for o in objs),
        lambda b: b["generations"][0]["finish_reason"],
        lambda objs: objs[-1]["generations"][0]["finish_reason"],
        "COMPLETE",
        "MAX_TOKENS",
    ),
    Family(
        "jamba",
        "ai21.jamba-1-5-mini-v1:0",
        lambda n: _messages("max_tokens", n, temperature=0.7),
        lambda b: b["choices"][0]["message"]["content"],
        lambda objs: "".join(o["choices"][0]["delta"].get("content", "") for o in objs),
        lambda b: b["choices"][0]["finish_reason"],
        lambda objs: objs[-1]["choices"][0]["finish_reason"],
        "stop",
        "length",
    ),
    Family(
        "deepseek-r1",
        "us.deepseek.r1-v1:0",
        lambda n: {
            "prompt": f"<｜begin▁of▁sentence｜><｜User｜>{PROMPT}<｜Assistant｜><think>\n",
            "max_tokens": n,
        },
        lambda b: b["choices"][0]["text"],
        lambda objs: "".join(o["choices"][0]["text"] for o in objs),
        lambda b: b["choices"][0]["stop_reason"],
        lambda objs: objs[-1]["choices"][0]["stop_reason"],
        "stop",
        "length",
    ),
    Family(
        "gpt-oss",
        "openai.gpt-oss-20b-1:0",
        lambda n: _messages("max_completion_tokens", n, reasoning_effort="low"),
        lambda b: b["choices"][0]["message"]["content"],
        lambda objs: "".join(o["choices"][0]["delta"].get("content", "") for o in objs),
        lambda b: b["choices"][0]["finish_reason"],
        lambda objs: objs[-1]["choices"][0]["finish_reason"],
        "stop",
        "length",
    ),
)

BY_NAME = {f.name: f for f in FAMILIES}
