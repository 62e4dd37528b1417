"""LMI / DJL Serving (SageMaker's Large Model Inference container), its default output format.

Requests are `{"inputs", "parameters", "stream"}` (chat bodies with `messages` go to the OpenAI
dialect, as LMI serves them in the OpenAI schema). Output follows DJL's Python formatters
(`djl_python/output_formatter.py`): non-streamed `{"generated_text": "..."}` (plus `"details"`
when asked) written with Python's `json.dumps` spacing; streamed JSON Lines
(`application/jsonlines`), one `{"token": {"id", "text", "log_prob"}}` per token, the last line
adding `generated_text` (and `details`; `{"finish_reason": "error"}` when generation failed).
DJL's front end answers refused requests with a pretty-printed
`{"code", "type", "message"}` object.

Token ids and log-probabilities are stand-ins (engines report text).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from outcrop.dialects.containers.base import (
    JSON_CONTENT_TYPE,
    ContainerRejected,
    ContainerReply,
    ContainerRequest,
    ContainerStream,
    is_json_content_type,
    python_json,
    token_id,
)
from outcrop.dialects.containers.openai_chat import OpenAIChatDialect
from outcrop.types import ChatMessage, Finish, GenerationRequest, SamplingParams, StopReason
from outcrop.wire.jsonbody import JsonInputError, load_json

JSON_LINES = "application/jsonlines"
DEFAULT_MAX_NEW_TOKENS = 30
FINISH_REASONS = {
    StopReason.END_TURN: "eos_token",
    StopReason.MAX_TOKENS: "length",
    StopReason.STOP_SEQUENCE: "stop_sequence",
}


class LmiDialect:
    """LMI's `/invocations` in its default `json` / `jsonlines` output formats."""

    name = "lmi"

    def __init__(self, model_name: str = "lmi") -> None:
        self._chat = OpenAIChatDialect(model_name, flavour="vllm")

    def parse(self, content_type: str | None, body: bytes, request_id: str) -> ContainerRequest:
        if not is_json_content_type(content_type):
            raise _refused(400, "BadRequestException", f"Unsupported content type: {content_type}")
        try:
            value = load_json(body)
        except JsonInputError as exc:
            raise _refused(400, "BadRequestException", f"Invalid JSON input: {exc}") from None
        if isinstance(value, dict) and "inputs" not in value and "messages" in value:
            request = self._chat.parse(content_type, body, request_id)
            return ContainerRequest(
                request.generation,
                request.stream,
                request.prompt,
                {**request.options, "chat": True},
            )
        if not isinstance(value, dict) or "inputs" not in value:
            raise _refused(400, "BadRequestException", "Parameter inputs is required.")
        inputs = value["inputs"]
        if isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], str):
            inputs = inputs[0]
        if not isinstance(inputs, str):
            raise _refused(400, "BadRequestException", "inputs must be a string.")
        params = value.get("parameters") or {}
        if not isinstance(params, dict):
            raise _refused(400, "BadRequestException", "parameters must be an object.")
        stream = bool(value.get("stream", params.get("stream", False)))
        generation = GenerationRequest(
            messages=(ChatMessage("user", inputs),),
            sampling=_sampling(params),
            request_id=request_id,
            raw_prompt=inputs,
        )
        options = {
            "details": bool(params.get("details", False)),
            "return_full_text": bool(params.get("return_full_text", False)),
        }
        return ContainerRequest(generation, stream, inputs, options)

    def complete(
        self, request: ContainerRequest, pieces: Sequence[str], finish: Finish, input_tokens: int
    ) -> ContainerReply:
        if request.options.get("chat"):
            return self._chat.complete(request, pieces, finish, input_tokens)
        prefix = request.prompt if request.options.get("return_full_text") else ""
        answer: dict[str, Any] = {"generated_text": prefix + "".join(pieces)}
        if request.options.get("details"):
            answer["details"] = {
                "finish_reason": FINISH_REASONS[finish.stop_reason],
                "generated_tokens": len(pieces),
                "inputs": request.prompt,
                "tokens": [_token(piece) for piece in pieces],
            }
        return ContainerReply(200, python_json(answer), JSON_CONTENT_TYPE)

    def stream(self, request: ContainerRequest, input_tokens: int) -> ContainerStream:
        if request.options.get("chat"):
            return self._chat.stream(request, input_tokens)
        return LmiStream(request)

    def failure(self, message: str) -> ContainerReply:
        body = python_json({"code": 424, "message": "prediction failure", "error": message})
        return ContainerReply(424, body, JSON_CONTENT_TYPE)

    def invalid(self, message: str) -> ContainerReply:
        return _refused(400, "BadRequestException", message).reply


class LmiStream:
    """JSON Lines, one per token; the last token is held back to carry `generated_text`."""

    content_type = JSON_LINES

    def __init__(self, request: ContainerRequest) -> None:
        self._request = request
        self._pending: str | None = None
        self._texts: list[str] = []

    def start(self) -> list[bytes]:
        return []

    def token(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self._pending is not None:
            out.append(_line({"token": _token(self._pending)}))
            self._texts.append(self._pending)
        self._pending = text
        return out

    def finish(self, finish: Finish) -> list[bytes]:
        last = self._pending or ""
        self._texts.append(last)
        self._pending = None
        line: dict[str, Any] = {"token": _token(last), "generated_text": self._generated()}
        if self._request.options.get("details"):
            line["details"] = {
                "finish_reason": FINISH_REASONS[finish.stop_reason],
                "generated_tokens": len(self._texts),
                "inputs": self._request.prompt,
            }
        return [_line(line)]

    def failure(self, message: str) -> list[bytes]:
        if self._pending is not None:
            self._texts.append(self._pending)
        last = self._pending or ""
        self._pending = None
        line = {
            "token": _token(last),
            "generated_text": self._generated(),
            "details": {"finish_reason": "error"},
        }
        return [_line(line)]

    def _generated(self) -> str:
        prefix = self._request.prompt if self._request.options.get("return_full_text") else ""
        return prefix + "".join(self._texts)


def _token(text: str) -> dict[str, Any]:
    return {"id": token_id(text), "text": text, "log_prob": 0.0}


def _line(obj: dict[str, Any]) -> bytes:
    return python_json(obj) + b"\n"


def _refused(status: int, kind: str, message: str) -> ContainerRejected:
    body = json.dumps({"code": status, "type": kind, "message": message}, indent=2).encode()
    return ContainerRejected(ContainerReply(status, body, JSON_CONTENT_TYPE))


def _sampling(params: dict[str, Any]) -> SamplingParams:
    def number(key: str) -> float | None:
        value = params.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _refused(400, "BadRequestException", f"{key} must be a number.")
        return float(value)

    max_new = number("max_new_tokens")
    if max_new is not None and max_new < 1:
        raise _refused(400, "BadRequestException", "max_new_tokens must be at least 1.")
    stop = params.get("stop_sequences", params.get("stop", []))
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _refused(400, "BadRequestException", "stop_sequences must be a list of strings.")
    temperature = number("temperature")
    top_p = number("top_p")
    top_k = number("top_k")
    seed = number("seed")
    return SamplingParams(
        max_tokens=int(max_new) if max_new is not None else DEFAULT_MAX_NEW_TOKENS,
        temperature=temperature,
        top_p=top_p,
        top_k=int(top_k) if top_k is not None and top_k > 0 else None,
        stop_sequences=tuple(stop),
        seed=int(seed) if seed is not None else None,
    )
