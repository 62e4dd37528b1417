"""Anthropic Claude on Bedrock: the Messages body and the legacy Text Completions body.

`parse` turns a request body into a `GenerationRequest` (raising Bedrock's ValidationException
for bodies Bedrock rejects); `complete` builds the non-streaming response body; `MessagesStream`
and `CompletionStream` turn engine events into the exact sequence of stream objects real
Bedrock sends (reference/dialects.md §2.1), the last one carrying
`amazon-bedrock-invocationMetrics`.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from typing import Any

from outcrop.dialects.schema import Field, check_object, check_value, malformed
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationRequest,
    Role,
    SamplingParams,
    StopReason,
    Usage,
)
from outcrop.wire.errors import ValidationException

_BASE62 = string.digits + string.ascii_letters

MESSAGES_FIELDS: dict[str, Field] = {
    "anthropic_version": Field("string", required=True),
    "anthropic_beta": Field("array"),
    "max_tokens": Field("integer", required=True, minimum=1),
    "messages": Field("array", required=True),
    "system": Field("any"),
    "temperature": Field("number", minimum=0, maximum=1),
    "top_p": Field("number", minimum=0, maximum=1),
    "top_k": Field("integer", minimum=0, maximum=500),
    "stop_sequences": Field("array"),
    "tools": Field("array"),
    "tool_choice": Field("object"),
    "thinking": Field("object"),
    "metadata": Field("object"),
    # anthropic SDK >= 2.0 moves the anthropic-user-profile-id header here; Bedrock's handling
    # of it is unverified, so it is tolerated rather than rejected.
    "user_profile_id": Field("string"),
}

COMPLETION_FIELDS: dict[str, Field] = {
    "prompt": Field("string", required=True),
    "max_tokens_to_sample": Field("integer", required=True, minimum=1),
    "temperature": Field("number", minimum=0, maximum=1),
    "top_p": Field("number", minimum=0, maximum=1),
    "top_k": Field("integer", minimum=0, maximum=500),
    "stop_sequences": Field("array"),
    "anthropic_version": Field("string"),
}

# Bedrock's Claude schema is a union of the Messages form and the legacy form; a Messages body
# that fails its branch reports the other branch's failure first (verbatim from captures).
_UNION_PREFIX = '#: subject must not be valid against schema {"required":["messages"]}'

_ROLES: tuple[Role, ...] = ("user", "assistant")


@dataclass(frozen=True, slots=True)
class ParsedBody:
    request: GenerationRequest
    legacy: bool
    """True for the Text Completions form (`prompt` + `max_tokens_to_sample`)."""


def message_id() -> str:
    return "msg_bdrk_01" + "".join(secrets.choice(_BASE62) for _ in range(22))


def parse(body: dict[str, Any], request_id: str = "") -> ParsedBody:
    """Validate a Claude body and translate it; raises ValidationException as Bedrock does."""
    if "messages" not in body and "prompt" in body:
        return ParsedBody(_parse_completion(body, request_id), legacy=True)
    problems = check_object(body, MESSAGES_FIELDS)
    if not problems:
        problems = _check_messages(body["messages"])
    if not problems and "stop_sequences" in body:
        problems = _check_strings(body["stop_sequences"], "#/stop_sequences")
    if problems:
        raise malformed(problems, prefix=_UNION_PREFIX)
    messages: list[ChatMessage] = []
    system = body.get("system")
    if system is not None:
        text = _system_text(system)
        if text:
            messages.append(ChatMessage("system", text))
    for turn in body["messages"]:
        text = _content_text(turn["content"])
        role: Role = turn["role"]
        if messages and messages[-1].role == role:
            # Anthropic merges consecutive turns of the same role.
            merged = ChatMessage(role, messages[-1].text + "\n\n" + text)
            messages[-1] = merged
        else:
            messages.append(ChatMessage(role, text))
    if not any(m.role == "user" for m in messages):
        raise ValidationException("messages: at least one message is required")
    sampling = SamplingParams(
        max_tokens=int(body["max_tokens"]),
        temperature=_opt_float(body.get("temperature")),
        top_p=_opt_float(body.get("top_p")),
        top_k=body.get("top_k"),
        stop_sequences=tuple(body.get("stop_sequences") or ()),
    )
    return ParsedBody(GenerationRequest(tuple(messages), sampling, request_id), legacy=False)


def _parse_completion(body: dict[str, Any], request_id: str) -> GenerationRequest:
    problems = check_object(body, COMPLETION_FIELDS)
    if not problems and "stop_sequences" in body:
        problems = _check_strings(body["stop_sequences"], "#/stop_sequences")
    if problems:
        raise malformed(problems)
    prompt: str = body["prompt"]
    if "Human:" not in prompt or "Assistant:" not in prompt:
        # Anthropic's legacy API requires the Human/Assistant turn markers.
        raise ValidationException('prompt must contain "\\n\\nHuman:" and "\\n\\nAssistant:" turns')
    sampling = SamplingParams(
        max_tokens=int(body["max_tokens_to_sample"]),
        temperature=_opt_float(body.get("temperature")),
        top_p=_opt_float(body.get("top_p")),
        top_k=body.get("top_k"),
        stop_sequences=tuple(body.get("stop_sequences") or ()),
    )
    return GenerationRequest(
        (ChatMessage("user", prompt),), sampling, request_id, raw_prompt=prompt
    )


def _check_messages(messages: list[Any]) -> list[str]:
    problems: list[str] = []
    for i, turn in enumerate(messages):
        pointer = f"#/messages/{i}"
        if not isinstance(turn, dict):
            problems.append(f"{pointer}: expected type: JSONObject, found: {type(turn).__name__}")
            continue
        problems += check_object(
            turn,
            {
                "role": Field("string", required=True, enum=_ROLES),
                "content": Field("any", required=True),
            },
            pointer,
        )
        content = turn.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                problems += _check_block(block, f"{pointer}/content/{j}")
        elif content is not None and not isinstance(content, str):
            problems.append(
                f"{pointer}/content: expected type: JSONArray, found: {type(content).__name__}"
            )
    return problems


def _check_block(block: Any, pointer: str) -> list[str]:
    if not isinstance(block, dict):
        return [f"{pointer}: expected type: JSONObject, found: String"]
    kind = block.get("type")
    if kind == "text":
        return check_value(block.get("text"), Field("string"), f"{pointer}/text")
    if kind in ("image", "document"):
        # The served models are text-only. Wording unverified against Bedrock.
        return []
    if kind in ("tool_use", "tool_result", "thinking", "redacted_thinking"):
        return []
    return [f"{pointer}/type: {kind} is not a valid enum value"]


def _check_strings(values: list[Any], pointer: str) -> list[str]:
    return [
        p for i, v in enumerate(values) for p in check_value(v, Field("string"), f"{pointer}/{i}")
    ]


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(b.get("text", "") for b in system if isinstance(b, dict))
    raise malformed([f"#/system: expected type: String, found: {type(system).__name__}"])


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            parts.append(block["text"])
        elif kind in ("image", "document"):
            raise ValidationException(
                f"The model served here does not accept {kind} input. Remove it and try again."
            )
        elif kind == "tool_result":
            inner = block.get("content", "")
            parts.append(inner if isinstance(inner, str) else _content_text(inner))
        elif kind == "tool_use":
            parts.append(json.dumps({"name": block.get("name"), "input": block.get("input")}))
    return "\n".join(parts)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def stop_reason_name(stop: StopReason) -> str:
    return {
        StopReason.END_TURN: "end_turn",
        StopReason.MAX_TOKENS: "max_tokens",
        StopReason.STOP_SEQUENCE: "stop_sequence",
    }[stop]


def complete(
    parsed: ParsedBody, model_name: str, text: str, finish: Finish, msg_id: str | None = None
) -> dict[str, Any]:
    """The non-streaming response body."""
    if parsed.legacy:
        return {
            "type": "completion",
            "completion": text,
            "stop_reason": _legacy_stop(finish.stop_reason),
            "stop": finish.stop_sequence,
        }
    return {
        "id": msg_id or message_id(),
        "type": "message",
        "role": "assistant",
        "model": model_name,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason_name(finish.stop_reason),
        "stop_sequence": finish.stop_sequence,
        "usage": {"input_tokens": finish.input_tokens, "output_tokens": finish.output_tokens},
    }


def _legacy_stop(stop: StopReason) -> str:
    return "max_tokens" if stop is StopReason.MAX_TOKENS else "stop_sequence"


def invocation_metrics(usage: Usage) -> dict[str, int]:
    return {
        "inputTokenCount": usage.input_tokens,
        "outputTokenCount": usage.output_tokens,
        "invocationLatency": usage.invocation_latency_ms,
        "firstByteLatency": usage.first_byte_latency_ms,
    }


class MessagesStream:
    """Stream objects of a Messages response, in Bedrock's order."""

    def __init__(self, model_name: str, input_tokens: int, msg_id: str | None = None) -> None:
        self.model_name = model_name
        self.input_tokens = input_tokens
        self.msg_id = msg_id or message_id()
        self._block_open = False

    def start(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "message_start",
                "message": {
                    "id": self.msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model_name,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
                },
            }
        ]

    def _open(self) -> list[dict[str, Any]]:
        if self._block_open:
            return []
        self._block_open = True
        return [
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        ]

    def text(self, piece: str) -> list[dict[str, Any]]:
        return [
            *self._open(),
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            },
        ]

    def finish(self, finish: Finish, usage: Usage) -> list[dict[str, Any]]:
        return [
            *self._open(),
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": stop_reason_name(finish.stop_reason),
                    "stop_sequence": finish.stop_sequence,
                },
                "usage": {"output_tokens": finish.output_tokens},
            },
            {"type": "message_stop", "amazon-bedrock-invocationMetrics": invocation_metrics(usage)},
        ]


class CompletionStream:
    """Stream objects of a legacy Text Completions response."""

    def start(self) -> list[dict[str, Any]]:
        return []

    def text(self, piece: str) -> list[dict[str, Any]]:
        return [{"completion": piece, "stop_reason": None, "stop": None}]

    def finish(self, finish: Finish, usage: Usage) -> list[dict[str, Any]]:
        return [
            {
                "completion": "",
                "stop_reason": _legacy_stop(finish.stop_reason),
                "stop": finish.stop_sequence,
                "amazon-bedrock-invocationMetrics": invocation_metrics(usage),
            }
        ]
