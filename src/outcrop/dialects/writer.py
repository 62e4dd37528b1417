"""Writer Palmyra X4 and X5 on InvokeModel: Writer's chat body (AWS model parameters pages).

Request, per the AWS user guide pages "Writer Palmyra X4" and "Writer Palmyra X5"
(https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-palmyra-x5.html):
`messages` (required, at least one; `role` and `content`, where content is a string, an object
`{"text": ...}` as in AWS's example, or a list of `{"type": "text", "text"}` parts),
`temperature` (0-2, default 1.0), `top_p` (0 < p <= 1, default 1.0), `max_tokens` (1-8192,
default 16), `min_tokens` (0 to max_tokens; accepted, not enforced by the local engines), `stop`
(at most 4), `seed`, `presence_penalty` and `frequency_penalty` (-2 to 2; accepted, not applied).

Response, as the pages show it: a vLLM-style `chat.completion` whose message carries
`reasoning_content: null` and `tool_calls: []` beside `content`, each choice a `finish_reason`
(`stop`, `length`) and `stop_reason`, `usage` with `prompt_tokens_details`, and
`prompt_logprobs`. The stream is unverified (the pages show none): vLLM's
`chat.completion.chunk` objects, the first with the assistant role, the last with
`finish_reason`, `usage` and the invocation metrics, as the other Chat Completions families on
Bedrock (dialects/openai.py).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from outcrop.dialects.base import (
    METRICS_KEY,
    Completion,
    InvokeCall,
    Obj,
    TextOnlyEncoder,
    invocation_metrics,
)
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

DEFAULT_MAX_TOKENS = 16  # AWS's documented default

FIELDS: dict[str, Field] = {
    "messages": Field("array", required=True, min_items=1),
    "temperature": Field("number", minimum=0, maximum=2),
    "top_p": Field("number", minimum=0, maximum=1),
    "max_tokens": Field("integer", minimum=1, maximum=8192),
    "min_tokens": Field("integer", minimum=0),
    "stop": Field("array", max_items=4),
    "seed": Field("integer"),
    "presence_penalty": Field("number", minimum=-2, maximum=2),
    "frequency_penalty": Field("number", minimum=-2, maximum=2),
}
_MESSAGE_FIELDS: dict[str, Field] = {
    "role": Field("string", required=True, enum=("system", "user", "assistant")),
    "content": Field("any", required=True),
}


def finish_reason(stop: StopReason) -> str:
    return "length" if stop is StopReason.MAX_TOKENS else "stop"


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _usage(finish: Finish) -> Obj:
    return {
        "prompt_tokens": finish.input_tokens,
        "total_tokens": finish.input_tokens + finish.output_tokens,
        "completion_tokens": finish.output_tokens,
        "prompt_tokens_details": None,
    }


def content_text(content: Any, pointer: str) -> tuple[str, list[str]]:
    """A message's text and any violations: a string, `{"text"}` or a list of text parts."""
    if isinstance(content, str):
        return content, []
    if isinstance(content, dict):
        problems = check_object(content, {"text": Field("string", required=True)}, pointer)
        return str(content.get("text", "")), problems
    if isinstance(content, list):
        texts: list[str] = []
        problems = []
        for i, part in enumerate(content):
            here = f"{pointer}/{i}"
            if not isinstance(part, dict):
                problems += check_value(part, Field("object"), here)
                continue
            problems += check_object(
                part, {"type": Field("string", enum=("text",)), "text": Field("string", True)}, here
            )
            texts.append(str(part.get("text", "")))
        return "\n".join(texts), problems
    return "", check_value(content, Field("string"), pointer)


@dataclass(slots=True)
class PalmyraInvocation:
    request: GenerationRequest
    model_id: str

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        return []

    def response(self, output: Completion, model_name: str) -> Obj:
        return {
            "id": completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_id,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "reasoning_content": None,
                        "content": output.text,
                        "tool_calls": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish_reason(output.finish.stop_reason),
                    "stop_reason": output.finish.stop_sequence,
                }
            ],
            "usage": _usage(output.finish),
            "prompt_logprobs": None,
        }

    def stream(self, model_name: str, input_tokens: int) -> PalmyraStream:
        return PalmyraStream(self.model_id)


class PalmyraStream(TextOnlyEncoder):
    """`chat.completion.chunk` objects (unverified; see the module docstring)."""

    def __init__(self, model: str) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model

    def _chunk(self, delta: Obj, reason: str | None, stop: str | None = None) -> Obj:
        choice: Obj = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        if reason is not None:
            choice["stop_reason"] = stop
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    def start(self) -> list[Obj]:
        return [self._chunk({"role": "assistant", "content": ""}, None)]

    def text(self, piece: str) -> list[Obj]:
        return [self._chunk({"content": piece}, None)]

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        last = self._chunk({}, finish_reason(finish.stop_reason), finish.stop_sequence)
        last["usage"] = _usage(finish)
        last[METRICS_KEY] = invocation_metrics(usage)
        return [last]


class PalmyraDialect:
    """Writer Palmyra's chat body."""

    def parse(self, body: Obj, call: InvokeCall) -> PalmyraInvocation:
        problems = check_object(body, FIELDS)
        messages: list[ChatMessage] = []
        if not problems:
            for i, raw in enumerate(body["messages"]):
                here = f"#/messages/{i}"
                if not isinstance(raw, dict):
                    problems += check_value(raw, Field("object"), here)
                    continue
                problems += check_object(raw, _MESSAGE_FIELDS, here)
                text, found = content_text(raw.get("content"), f"{here}/content")
                problems += found
                role: Role = raw.get("role", "user")
                if messages and messages[-1].role == role and role != "system":
                    messages[-1] = ChatMessage(role, messages[-1].text + "\n\n" + text)
                else:
                    messages.append(ChatMessage(role, text))
            stops = body.get("stop") or []
            problems += [
                p
                for i, s in enumerate(stops)
                for p in check_value(s, Field("string"), f"#/stop/{i}")
            ]
        if problems:
            raise malformed(problems)
        temperature, top_p = body.get("temperature"), body.get("top_p")
        sampling = SamplingParams(
            max_tokens=int(body.get("max_tokens") or DEFAULT_MAX_TOKENS),
            temperature=None if temperature is None else float(temperature),
            top_p=None if top_p is None else float(top_p),
            stop_sequences=tuple(body.get("stop") or ()),
            seed=body.get("seed"),
        )
        request = GenerationRequest(tuple(messages), sampling, call.request_id)
        return PalmyraInvocation(request, call.model_id)
