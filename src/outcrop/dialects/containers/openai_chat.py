"""The OpenAI chat-completions body, as current LMI (vLLM) and TGI containers serve it.

Requests are `{"messages": [...], "max_tokens", "temperature", "top_p", "stop", "seed",
"stream", "stream_options": {"include_usage"}, "model"}`. Non-streamed answers are one
`chat.completion` object; streamed answers are server-sent events of `chat.completion.chunk`
objects (a first chunk with the assistant role, one per token, a last one with the
`finish_reason`, an optional usage chunk) ended by `data: [DONE]`. Errors are vLLM's
`{"error": {"message", "type", "param", "code"}}`.

Two flavours differ in the framing the server library writes: vLLM (LMI) writes `data: <json>`
and TGI (axum) writes `data:<json>`, with a `system_fingerprint` on every object.
Validation messages are shortened forms of vLLM's (which come from pydantic).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from outcrop.dialects.containers.base import (
    JSON_CONTENT_TYPE,
    ContainerRejected,
    ContainerReply,
    ContainerRequest,
    ContainerStream,
    compact_json,
    is_json_content_type,
)
from outcrop.types import ChatMessage, Finish, GenerationRequest, Role, SamplingParams, StopReason
from outcrop.wire.jsonbody import JsonInputError, load_json

EVENT_STREAM = "text/event-stream"
DEFAULT_MAX_TOKENS = 256
TGI_FINGERPRINT = "3.3.6-native"

Flavour = Literal["vllm", "tgi"]

FINISH_REASONS = {
    StopReason.END_TURN: "stop",
    StopReason.MAX_TOKENS: "length",
    StopReason.STOP_SEQUENCE: "stop",
}

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "user",
}


class OpenAIChatDialect:
    """Chat completions in the OpenAI schema."""

    name = "openai"

    def __init__(self, model_name: str = "model", flavour: Flavour = "vllm") -> None:
        self.model_name = model_name
        self.flavour = flavour

    def parse(self, content_type: str | None, body: bytes, request_id: str) -> ContainerRequest:
        if not is_json_content_type(content_type):
            raise _bad_request(
                f"Unsupported Content-Type {content_type!r}: expected application/json."
            )
        try:
            value = load_json(body)
        except JsonInputError as exc:
            raise _bad_request(f"JSON decode error: {exc}") from None
        if not isinstance(value, dict):
            raise _bad_request("Input should be a valid dictionary or object")
        raw_messages = value.get("messages")
        if not isinstance(raw_messages, list) or not raw_messages:
            raise _bad_request("Field required: messages must be a non-empty list")
        messages = tuple(_message(m, i) for i, m in enumerate(raw_messages))
        stream = value.get("stream", False)
        if not isinstance(stream, bool):
            raise _bad_request("stream: Input should be a valid boolean")
        options_raw = value.get("stream_options") or {}
        if not isinstance(options_raw, dict):
            raise _bad_request("stream_options: Input should be a valid dictionary")
        model = value.get("model")
        generation = GenerationRequest(
            messages=messages, sampling=_sampling(value), request_id=request_id
        )
        prompt = "\n".join(m.text for m in messages)
        options = {
            "model": model if isinstance(model, str) and model else self.model_name,
            "include_usage": bool(options_raw.get("include_usage", False)),
        }
        return ContainerRequest(generation, stream, prompt, options)

    def complete(
        self, request: ContainerRequest, pieces: Sequence[str], finish: Finish, input_tokens: int
    ) -> ContainerReply:
        answer: dict[str, Any] = {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.options["model"],
        }
        if self.flavour == "tgi":
            answer["system_fingerprint"] = TGI_FINGERPRINT
        answer["choices"] = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(pieces)},
                "logprobs": None,
                "finish_reason": FINISH_REASONS[finish.stop_reason],
            }
        ]
        answer["usage"] = _usage(input_tokens, finish.output_tokens)
        return ContainerReply(200, compact_json(answer), JSON_CONTENT_TYPE)

    def stream(self, request: ContainerRequest, input_tokens: int) -> ContainerStream:
        return OpenAIChatStream(request, input_tokens, self.flavour)

    def failure(self, message: str) -> ContainerReply:
        return ContainerReply(
            500, _error_body(message, "InternalServerError", 500), JSON_CONTENT_TYPE
        )

    def invalid(self, message: str) -> ContainerReply:
        return _bad_request(message).reply


class OpenAIChatStream:
    """`chat.completion.chunk` events, then `[DONE]`."""

    content_type = EVENT_STREAM

    def __init__(self, request: ContainerRequest, input_tokens: int, flavour: Flavour) -> None:
        self._request = request
        self._input_tokens = input_tokens
        self._flavour = flavour
        self._id = _completion_id()
        self._created = int(time.time())
        self._prefix = b"data:" if flavour == "tgi" else b"data: "

    def start(self) -> list[bytes]:
        if self._flavour == "tgi":
            return []
        return [self._chunk([_choice({"role": "assistant", "content": ""}, None)])]

    def token(self, text: str) -> list[bytes]:
        delta: dict[str, Any] = {"content": text}
        if self._flavour == "tgi":
            delta = {"role": "assistant", "content": text}
        return [self._chunk([_choice(delta, None)])]

    def finish(self, finish: Finish) -> list[bytes]:
        reason = FINISH_REASONS[finish.stop_reason]
        choice = _choice(
            {} if self._flavour == "vllm" else {"role": "assistant", "content": ""}, reason
        )
        if self._flavour == "vllm":
            choice["stop_reason"] = None
        out = [self._chunk([choice])]
        if self._request.options.get("include_usage"):
            out.append(self._chunk([], usage=_usage(self._input_tokens, finish.output_tokens)))
        out.append(self._prefix + b"[DONE]\n\n")
        return out

    def failure(self, message: str) -> list[bytes]:
        return [
            self._prefix + _error_body(message, "InternalServerError", 500) + b"\n\n",
            self._prefix + b"[DONE]\n\n",
        ]

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._request.options["model"],
        }
        if self._flavour == "tgi":
            chunk["system_fingerprint"] = TGI_FINGERPRINT
        chunk["choices"] = choices
        if usage is not None:
            chunk["usage"] = usage
        return self._prefix + compact_json(chunk) + b"\n\n"


def _choice(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
    }


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _error_body(message: str, kind: str, code: int) -> bytes:
    return compact_json({"error": {"message": message, "type": kind, "param": None, "code": code}})


def _bad_request(message: str) -> ContainerRejected:
    return ContainerRejected(
        ContainerReply(400, _error_body(message, "BadRequestError", 400), JSON_CONTENT_TYPE)
    )


def _message(raw: object, index: int) -> ChatMessage:
    if not isinstance(raw, dict):
        raise _bad_request(f"messages.{index}: Input should be a valid dictionary")
    role = _ROLES.get(str(raw.get("role")))
    if role is None:
        raise _bad_request(f"messages.{index}.role: unknown role {raw.get('role')!r}")
    content = raw.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _bad_request(f"messages.{index}.content: only text parts are supported")
            parts.append(str(part.get("text", "")))
        text = "".join(parts)
    else:
        raise _bad_request(f"messages.{index}.content: Input should be a valid string")
    return ChatMessage(role, text)


def _sampling(value: dict[str, Any]) -> SamplingParams:
    def number(key: str, low: float, high: float | None) -> float | None:
        raw = value.get(key)
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise _bad_request(f"{key}: Input should be a valid number")
        if raw < low or (high is not None and raw > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise _bad_request(f"{key} must be {bound}, got {raw}.")
        return float(raw)

    max_tokens = value.get("max_completion_tokens", value.get("max_tokens"))
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise _bad_request(f"max_tokens must be at least 1, got {max_tokens}.")
    stop = value.get("stop")
    if isinstance(stop, str):
        stops: tuple[str, ...] = (stop,)
    elif stop is None:
        stops = ()
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise _bad_request("stop: Input should be a valid string or list of strings")
    seed = value.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _bad_request("seed: Input should be a valid integer")
    top_k = number("top_k", -1, None)
    return SamplingParams(
        max_tokens=max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS,
        temperature=number("temperature", 0, 2),
        top_p=number("top_p", 0, 1),
        top_k=int(top_k) if top_k is not None and top_k > 0 else None,
        stop_sequences=stops,
        seed=seed,
    )
