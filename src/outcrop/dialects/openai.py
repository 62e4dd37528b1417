"""OpenAI gpt-oss on InvokeModel: the Chat Completions body (reference/dialects.md §2.9).

Request: `messages` (system / developer / user / assistant / tool), `max_completion_tokens` or
`max_tokens`, `temperature`, `top_p`, `stop`, `seed`, `tools`, `tool_choice` (`auto`, `none`,
`required`, or a named function), `response_format` (structured outputs, dialects/structured.py),
`reasoning_effort` (`low` / `medium` / `high`; gpt-oss always
reasons, so every request asks the engine for reasoning). `model`, if present, must name the
invoked model, and `stream`, if present, must match the operation (AWS docs).

Response: a `chat.completion` object. On InvokeModel the reasoning is prepended to `content`
wrapped in `<reasoning>...</reasoning>` (AWS docs). Tool calls are `message.tool_calls` with
`finish_reason: tool_calls`. The stream is unverified (derived from client code): one
`chat.completion.chunk` per piece (`delta.content`, the reasoning inside the same tags; tool calls
as OpenAI's indexed `delta.tool_calls` fragments), the last chunk carrying `finish_reason`, `usage`
and the invocation metrics, which is where langchain-aws reads them.
"""

from __future__ import annotations

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
    base62_id,
    invocation_metrics,
)
from outcrop.dialects.schema import Field, check_object, check_value, malformed
from outcrop.dialects.structured import check_supported, openai_schema
from outcrop.types import (
    Finish,
    GenerationRequest,
    ReasoningConfig,
    SamplingParams,
    StopReason,
    ToolCallEvent,
    Usage,
)
from outcrop.wire.errors import NotImplementedYet, ValidationException

DEFAULT_MAX_TOKENS = 4096  # unverified default

FIELDS: dict[str, Field] = {
    "messages": Field("array", required=True, min_items=1),
    "model": Field("string"),
    "stream": Field("boolean"),
    "max_completion_tokens": Field("integer", minimum=1),
    "max_tokens": Field("integer", minimum=1),
    "temperature": Field("number", minimum=0, maximum=2),
    "top_p": Field("number", minimum=0, maximum=1),
    "stop": Field("any"),
    "seed": Field("integer"),
    "tools": Field("array"),
    "tool_choice": Field("any"),
    "parallel_tool_calls": Field("boolean"),
    "response_format": Field("object"),
    "reasoning_effort": Field("string", enum=("low", "medium", "high")),
    "n": Field("integer", minimum=1),
    "frequency_penalty": Field("number", minimum=-2, maximum=2),
    "presence_penalty": Field("number", minimum=-2, maximum=2),
    "logprobs": Field("boolean"),
    "top_logprobs": Field("integer", minimum=0, maximum=20),
    "stream_options": Field("object"),
    "user": Field("string"),
    "metadata": Field("object"),
}
_ROLES = ("system", "developer", "user", "assistant", "tool")


def finish_reason(stop: StopReason) -> str:
    if stop is StopReason.MAX_TOKENS:
        return "length"
    if stop is StopReason.TOOL_USE:
        return "tool_calls"
    return "stop"


def completion_id() -> str:
    return base62_id("chatcmpl-", 29)


def call_id() -> str:
    return base62_id("call_", 24)


def with_reasoning(reasoning: str, text: str) -> str:
    return f"<reasoning>{reasoning}</reasoning>{text}" if reasoning else text


def _usage(finish: Finish) -> Obj:
    return {
        "prompt_tokens": finish.input_tokens,
        "completion_tokens": finish.output_tokens,
        "total_tokens": finish.input_tokens + finish.output_tokens,
    }


@dataclass(slots=True)
class GptOssInvocation:
    request: GenerationRequest
    model_id: str
    call_ids: CallIds = field(default_factory=lambda: CallIds(call_id))

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        return []

    def response(self, output: Completion, model_name: str) -> Obj:
        message: Obj = {
            "role": "assistant",
            "content": with_reasoning(output.reasoning, output.text),
        }
        if output.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self.call_ids(c.call_id),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in output.tool_calls
            ]
        return {
            "id": completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_id,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish_reason(output.finish.stop_reason),
                }
            ],
            "usage": _usage(output.finish),
        }

    def stream(self, model_name: str, input_tokens: int) -> GptOssStream:
        return GptOssStream(self.model_id)


class GptOssStream:
    """`chat.completion.chunk` objects (unverified; see the module docstring)."""

    def __init__(self, model: str) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self._first = True
        self._reasoning_open = False
        self._tool_calls = cc.ToolCallDeltas(CallIds(call_id))

    def _chunk(self, delta: Obj, reason: str | None) -> Obj:
        if self._first and reason is None:
            self._first = False
            delta = {"role": "assistant", **delta}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
        }

    def start(self) -> list[Obj]:
        return []

    def reasoning(self, piece: str) -> list[Obj]:
        prefix = "" if self._reasoning_open else "<reasoning>"
        self._reasoning_open = True
        return [self._chunk({"content": prefix + piece}, None)]

    def _close_reasoning(self) -> list[Obj]:
        if not self._reasoning_open:
            return []
        self._reasoning_open = False
        return [self._chunk({"content": "</reasoning>"}, None)]

    def text(self, piece: str) -> list[Obj]:
        return [*self._close_reasoning(), self._chunk({"content": piece}, None)]

    def tool_call(self, event: ToolCallEvent) -> list[Obj]:
        out = self._close_reasoning()
        call = self._tool_calls.delta(event)
        return out if call is None else [*out, self._chunk({"tool_calls": [call]}, None)]

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        last = self._chunk({}, finish_reason(finish.stop_reason))
        last["usage"] = _usage(finish)
        last[METRICS_KEY] = invocation_metrics(usage)
        return [*self._close_reasoning(), last]


class GptOssDialect:
    """OpenAI Chat Completions bodies: gpt-oss, and the other open-weight models Bedrock serves
    with this body (`reasons`: the model always reasons, as gpt-oss does)."""

    def __init__(self, reasons: bool = True) -> None:
        self.reasons = reasons

    def parse(self, body: Obj, call: InvokeCall) -> GptOssInvocation:
        problems = check_object(body, FIELDS)
        if not problems:
            problems = cc.check_messages(body["messages"], _ROLES)
            problems += cc.check_tools(body.get("tools") or [])
            raw_stop = body.get("stop")
            if raw_stop is not None and not isinstance(raw_stop, str):
                problems += check_value(raw_stop, Field("array", max_items=4), "#/stop")
        if problems:
            raise malformed(problems)
        # Wording of these two unverified; the conditions are from the AWS docs.
        if "model" in body and body["model"] != call.model_id:
            raise ValidationException(
                f"The model {body['model']} in the request body does not match the model ID "
                f"{call.model_id} of the request."
            )
        if "stream" in body and body["stream"] is not call.streaming:
            operation = "InvokeModelWithResponseStream" if call.streaming else "InvokeModel"
            raise ValidationException(
                f"The stream value {str(body['stream']).lower()} in the request body does not "
                f"match the {operation} operation."
            )
        if body.get("n", 1) != 1:
            raise NotImplementedYet("Outcrop serves n = 1 only; send one request per completion.")
        stop: Any = body.get("stop") or ()
        max_tokens = int(body.get("max_tokens") or DEFAULT_MAX_TOKENS)
        temperature = body.get("temperature")
        top_p = body.get("top_p")
        sampling = SamplingParams(
            max_tokens=int(body.get("max_completion_tokens") or max_tokens),
            temperature=None if temperature is None else float(temperature),
            top_p=None if top_p is None else float(top_p),
            stop_sequences=(stop,) if isinstance(stop, str) else tuple(stop),
            seed=body.get("seed"),
        )
        tools = cc.to_tools(body.get("tools") or [])
        choice = cc.to_tool_choice(body.get("tool_choice"), tools) if tools else None
        effort = body.get("reasoning_effort")
        request = GenerationRequest(
            tuple(cc.to_messages(body["messages"])),
            sampling,
            call.request_id,
            tools=tools,
            tool_choice=choice or cc.to_tool_choice(None, tools),
            reasoning=ReasoningConfig(effort=effort) if self.reasons or effort else None,
            response_schema=openai_schema(body.get("response_format")),
        )
        check_supported(call.model_id, request.response_schema)
        return GptOssInvocation(request, call.model_id)
