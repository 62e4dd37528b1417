"""Mistral AI on InvokeModel: text completions (Mistral 7B, Mixtral, Large/Small 2402) and chat
completions (Mistral Large 2407, Pixtral Large) (docs/dialects.md §2.5).

Text completions: `prompt` (`<s>[INST] ... [/INST]` markup is split into turns for the served
model, plain text is continued raw; see `dialects/prompts.py`), `max_tokens`, `stop`,
`temperature`, `top_p`, `top_k`. Response `{"outputs": [{"text", "stop_reason"}]}` with `stop` or
`length`; stream objects of the same shape per token, the last token's object carrying the stop
reason and the invocation metrics (as recorded).

Chat completions: OpenAI-like `messages` / `tools` / `tool_choice` (`auto`, `any`, `none`).
Which key the response's choice uses for the stop reason is unresolved (the AWS docs say
`stop_reason`, LiteLLM reads `finish_reason`), so every choice carries both with the same value
(`stop`, `length`, `tool_calls`), plus OpenAI's `id`/`object`/`created`/`model`/`usage`. Its
stream format is unverified (no client in scope streams it through InvokeModel); it follows the
AWS docs' shape: `{"choices": [{"index": 0, "message": {"role", "content"}, "stop_reason": null,
"finish_reason": null}]}` per piece, tool calls whole in one object, the last object carrying the
stop reason and the invocation metrics.
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

from outcrop.dialects import chatcompletions as cc
from outcrop.dialects.base import (
    METRICS_KEY,
    CallIds,
    Completion,
    InvokeCall,
    Obj,
    TextOnlyEncoder,
    invocation_metrics,
    new_uuid,
)
from outcrop.dialects.prompts import completion_request
from outcrop.dialects.schema import Field, check_object, check_value, malformed
from outcrop.types import (
    Finish,
    GenerationRequest,
    SamplingParams,
    StopReason,
    ToolCallEvent,
    Usage,
)

DEFAULT_MAX_TOKENS = 512  # unverified default

TEXT_FIELDS: dict[str, Field] = {
    "prompt": Field("string", required=True),
    "max_tokens": Field("integer", minimum=1),
    "stop": Field("array", max_items=10),
    "temperature": Field("number", minimum=0, maximum=1),
    "top_p": Field("number", minimum=0, maximum=1),
    "top_k": Field("integer", minimum=0, maximum=200),
}
CHAT_FIELDS: dict[str, Field] = {
    "messages": Field("array", required=True, min_items=1),
    "tools": Field("array"),
    "tool_choice": Field("any"),
    "max_tokens": Field("integer", minimum=1),
    "temperature": Field("number", minimum=0, maximum=1),
    "top_p": Field("number", minimum=0, maximum=1),
    # Not in the AWS field list but part of Mistral's chat API; accepted.
    "stop": Field("array", max_items=10),
}
_ROLES = ("system", "user", "assistant", "tool")
_ALNUM = string.ascii_letters + string.digits


def text_stop_reason(stop: StopReason) -> str:
    return "length" if stop is StopReason.MAX_TOKENS else "stop"


def chat_stop_reason(stop: StopReason) -> str:
    if stop is StopReason.MAX_TOKENS:
        return "length"
    if stop is StopReason.TOOL_USE:
        return "tool_calls"
    return "stop"


def _sampling(body: Obj) -> SamplingParams:
    temperature = body.get("temperature")
    top_p = body.get("top_p")
    return SamplingParams(
        max_tokens=int(body.get("max_tokens", DEFAULT_MAX_TOKENS)),
        temperature=None if temperature is None else float(temperature),
        top_p=None if top_p is None else float(top_p),
        top_k=body.get("top_k"),
        stop_sequences=tuple(body.get("stop") or ()),
    )


def _check_stops(body: Obj) -> list[str]:
    return [
        p
        for i, stop in enumerate(body.get("stop") or [])
        for p in check_value(stop, Field("string"), f"#/stop/{i}")
    ]


# -- text completions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MistralTextInvocation:
    request: GenerationRequest

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        return []

    def response(self, output: Completion, model_name: str) -> Obj:
        reason = text_stop_reason(output.finish.stop_reason)
        return {"outputs": [{"text": output.text, "stop_reason": reason}]}

    def stream(self, model_name: str, input_tokens: int) -> MistralTextStream:
        return MistralTextStream()


class MistralTextStream(TextOnlyEncoder):
    """Per-token `outputs` objects; the last token rides on the final object."""

    def __init__(self) -> None:
        self._held: str | None = None

    def text(self, piece: str) -> list[Obj]:
        out: list[Obj] = []
        if self._held is not None:
            out.append({"outputs": [{"text": self._held, "stop_reason": None}]})
        self._held = piece
        return out

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        reason = text_stop_reason(finish.stop_reason)
        return [
            {
                "outputs": [{"text": self._held or "", "stop_reason": reason}],
                METRICS_KEY: invocation_metrics(usage),
            }
        ]


class MistralTextDialect:
    """Mistral text-completion bodies."""

    def parse(self, body: Obj, call: InvokeCall) -> MistralTextInvocation:
        problems = check_object(body, TEXT_FIELDS) or _check_stops(body)
        if problems:
            raise malformed(problems)
        request = completion_request(body["prompt"], _sampling(body), call.request_id)
        return MistralTextInvocation(request)


# -- chat completions --------------------------------------------------------------------------


def mistral_call_id() -> str:
    """Mistral's tool-call IDs are 9 alphanumeric characters."""
    return "".join(secrets.choice(_ALNUM) for _ in range(9))


@dataclass(slots=True)
class MistralChatInvocation:
    request: GenerationRequest
    call_ids: CallIds = field(default_factory=lambda: CallIds(mistral_call_id))

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        return []

    def response(self, output: Completion, model_name: str) -> Obj:
        finish = output.finish
        message: Obj = {"role": "assistant", "content": output.text}
        if output.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self.call_ids(call.call_id),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in output.tool_calls
            ]
        reason = chat_stop_reason(finish.stop_reason)
        return {
            "id": new_uuid().replace("-", ""),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": [
                {"index": 0, "message": message, "stop_reason": reason, "finish_reason": reason}
            ],
            "usage": {
                "prompt_tokens": finish.input_tokens,
                "completion_tokens": finish.output_tokens,
                "total_tokens": finish.input_tokens + finish.output_tokens,
            },
        }

    def stream(self, model_name: str, input_tokens: int) -> MistralChatStream:
        return MistralChatStream()


class MistralChatStream(TextOnlyEncoder):
    """Chat stream objects (format unverified; see the module docstring)."""

    def __init__(self) -> None:
        self._call_ids = CallIds(mistral_call_id)
        self._calls: dict[str, tuple[str, list[str]]] = {}

    @staticmethod
    def _choice(message: Obj, reason: str | None) -> Obj:
        return {
            "choices": [
                {"index": 0, "message": message, "stop_reason": reason, "finish_reason": reason}
            ]
        }

    def text(self, piece: str) -> list[Obj]:
        return [self._choice({"role": "assistant", "content": piece}, None)]

    def tool_call(self, event: ToolCallEvent) -> list[Obj]:
        self._calls.setdefault(event.call_id, (event.name, []))[1].append(event.arguments)
        return []

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        out: list[Obj] = []
        if self._calls:
            calls = [
                {
                    "id": self._call_ids(call_id),
                    "type": "function",
                    "function": {"name": name, "arguments": "".join(parts)},
                }
                for call_id, (name, parts) in self._calls.items()
            ]
            out.append(
                self._choice({"role": "assistant", "content": "", "tool_calls": calls}, None)
            )
        last = self._choice(
            {"role": "assistant", "content": ""}, chat_stop_reason(finish.stop_reason)
        )
        last[METRICS_KEY] = invocation_metrics(usage)
        return [*out, last]


class MistralChatDialect:
    """Mistral chat-completion bodies."""

    def parse(self, body: Obj, call: InvokeCall) -> MistralChatInvocation:
        problems = check_object(body, CHAT_FIELDS)
        if not problems:
            problems = cc.check_messages(body["messages"], _ROLES) + _check_stops(body)
            problems += cc.check_tools(body.get("tools") or [])
        if problems:
            raise malformed(problems)
        tools = cc.to_tools(body.get("tools") or [])
        choice: Any = body.get("tool_choice")
        request = GenerationRequest(
            tuple(cc.to_messages(body["messages"])),
            _sampling(body),
            call.request_id,
            tools=tools,
            tool_choice=cc.to_tool_choice(choice, tools, forcing_word="any")
            if tools
            else cc.to_tool_choice(None, tools),
        )
        return MistralChatInvocation(request)
