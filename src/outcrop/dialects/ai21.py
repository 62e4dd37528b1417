"""AI21 Labs Jamba on InvokeModel: an OpenAI-like chat body (docs/dialects.md §2.7).

Request: `messages` (system / user / assistant / tool), `max_tokens` (0-4096), `temperature`
(0-2), `top_p`, `stop`, `n`, `frequency_penalty`, `presence_penalty`, `tools`,
`response_format`, `documents`. Response as recorded: `id` (`chatcmpl-<uuid>`), `choices` with
`message.tool_calls: null` when there are none and `finish_reason` (`stop`, `length`,
`tool_calls`), `usage`, `meta.requestDurationMillis` and `model` (AI21's name, `jamba-1.5-mini`).

The stream is unverified (no capture; no client in scope streams Jamba through InvokeModel):
OpenAI-style `chat.completion.chunk`-like objects with `delta`s, the first carrying the role, the
last an empty delta with `finish_reason`, `usage` and the invocation metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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
from outcrop.dialects.schema import Field, check_object, check_value, malformed
from outcrop.types import (
    Finish,
    GenerationRequest,
    SamplingParams,
    StopReason,
    ToolCallEvent,
    Usage,
)
from outcrop.wire.errors import NotImplementedYet

DEFAULT_MAX_TOKENS = 4096  # documented default

FIELDS: dict[str, Field] = {
    "messages": Field("array", required=True, min_items=1),
    "max_tokens": Field("integer", minimum=0, maximum=4096),
    "temperature": Field("number", minimum=0, maximum=2),
    "top_p": Field("number", minimum=0, maximum=1),
    "stop": Field("array"),
    "n": Field("integer", minimum=1, maximum=16),
    "frequency_penalty": Field("number"),
    "presence_penalty": Field("number"),
    "tools": Field("array"),
    "response_format": Field("object"),
    "documents": Field("array"),
}
_ROLES = ("system", "user", "assistant", "tool")

# AI21's own model names, as its `model` field reports them.
MODEL_NAMES = {
    "ai21.jamba-1-5-mini-v1:0": "jamba-1.5-mini",
    "ai21.jamba-1-5-large-v1:0": "jamba-1.5-large",
    "ai21.jamba-instruct-v1:0": "jamba-instruct",
}


def finish_reason(stop: StopReason) -> str:
    if stop is StopReason.MAX_TOKENS:
        return "length"
    if stop is StopReason.TOOL_USE:
        return "tool_calls"
    return "stop"


def _usage(finish: Finish) -> Obj:
    return {
        "prompt_tokens": finish.input_tokens,
        "completion_tokens": finish.output_tokens,
        "total_tokens": finish.input_tokens + finish.output_tokens,
    }


def call_id() -> str:
    return "call_" + new_uuid().replace("-", "")[:24]


@dataclass(slots=True)
class JambaInvocation:
    request: GenerationRequest
    model_id: str
    started: float = field(default_factory=time.monotonic)
    call_ids: CallIds = field(default_factory=lambda: CallIds(call_id))

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        return []

    def response(self, output: Completion, model_name: str) -> Obj:
        calls = [
            {
                "id": self.call_ids(c.call_id),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in output.tool_calls
        ]
        finish = output.finish
        return {
            "id": "chatcmpl-" + new_uuid(),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": output.text,
                        "tool_calls": calls or None,
                    },
                    "finish_reason": finish_reason(finish.stop_reason),
                }
            ],
            "usage": _usage(finish),
            "meta": {"requestDurationMillis": int((time.monotonic() - self.started) * 1000)},
            "model": MODEL_NAMES.get(self.model_id, model_name),
        }

    def stream(self, model_name: str, input_tokens: int) -> JambaStream:
        return JambaStream(MODEL_NAMES.get(self.model_id, model_name))


class JambaStream(TextOnlyEncoder):
    """OpenAI-style delta chunks (unverified; see the module docstring)."""

    def __init__(self, model: str) -> None:
        self.id = "chatcmpl-" + new_uuid()
        self.model = model
        self._first = True
        self._tool_calls = cc.ToolCallDeltas(CallIds(call_id))

    def _chunk(self, delta: Obj, reason: str | None) -> Obj:
        return {
            "id": self.id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
            "model": self.model,
        }

    def _delta(self, delta: Obj) -> Obj:
        if self._first:
            self._first = False
            delta = {"role": "assistant", **delta}
        return self._chunk(delta, None)

    def text(self, piece: str) -> list[Obj]:
        return [self._delta({"content": piece})]

    def tool_call(self, event: ToolCallEvent) -> list[Obj]:
        call = self._tool_calls.delta(event)
        return [] if call is None else [self._delta({"tool_calls": [call]})]

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        last = self._chunk({}, finish_reason(finish.stop_reason))
        last["usage"] = _usage(finish)
        last[METRICS_KEY] = invocation_metrics(usage)
        return [last]


class JambaDialect:
    """AI21 Jamba chat bodies."""

    def parse(self, body: Obj, call: InvokeCall) -> JambaInvocation:
        problems = check_object(body, FIELDS)
        if not problems:
            problems = cc.check_messages(body["messages"], _ROLES)
            problems += cc.check_tools(body.get("tools") or [])
            problems += [
                p
                for i, stop in enumerate(body.get("stop") or [])
                for p in check_value(stop, Field("string"), f"#/stop/{i}")
            ]
        if problems:
            raise malformed(problems)
        if body.get("n", 1) != 1:
            raise NotImplementedYet("Outcrop serves n = 1 only; send one request per completion.")
        temperature = body.get("temperature")
        top_p = body.get("top_p")
        max_tokens = int(body.get("max_tokens", DEFAULT_MAX_TOKENS)) or DEFAULT_MAX_TOKENS
        sampling = SamplingParams(
            max_tokens=max_tokens,
            temperature=None if temperature is None else float(temperature),
            top_p=None if top_p is None else float(top_p),
            stop_sequences=tuple(body.get("stop") or ()),
        )
        tools = cc.to_tools(body.get("tools") or [])
        request = GenerationRequest(
            tuple(cc.to_messages(body["messages"])), sampling, call.request_id, tools=tools
        )
        return JambaInvocation(request, call.model_id)
