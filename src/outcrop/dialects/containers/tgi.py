"""Hugging Face Text Generation Inference (TGI), as it answers SageMaker's `POST /invocations`.

TGI's `/invocations` takes `{"inputs", "parameters", "stream"}` (its generate API) or an OpenAI
chat body with `messages` (handed to the `openai` dialect, which TGI's Messages API mirrors).
Non-streamed answers are a JSON list with one `{"generated_text", "details"?}` object;
streamed answers are server-sent events written by axum as `data:<json>\\n\\n`, one per token,
each `{"index", "token": {"id", "text", "logprob", "special"}, "generated_text", "details"}`,
the last carrying the full `generated_text` (and `details` when asked). Errors are
`{"error", "error_type"}`: 422 for validation, 424 for generation failures, and axum's plain-text
rejections (415, 400, 422) for bodies that are not the right JSON.

Token ids and log-probabilities are stand-ins (engines report text); everything else follows
TGI's router (`router/src/lib.rs`, `server.rs`, `sagemaker.rs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from outcrop.dialects.containers.base import (
    JSON_CONTENT_TYPE,
    ContainerRejected,
    ContainerReply,
    ContainerRequest,
    ContainerStream,
    compact_json,
    is_json_content_type,
    json_position,
    token_id,
)
from outcrop.dialects.containers.openai_chat import OpenAIChatDialect
from outcrop.types import ChatMessage, Finish, GenerationRequest, SamplingParams, StopReason
from outcrop.wire.jsonbody import JsonInputError, load_json

EVENT_STREAM = "text/event-stream"
PLAIN_TEXT = "text/plain; charset=utf-8"
DEFAULT_MAX_NEW_TOKENS = 100
MAX_STOP_SEQUENCES = 4
EOS_TOKEN: dict[str, Any] = {"id": 2, "text": "</s>", "logprob": 0.0, "special": True}
"""The end-of-sequence token TGI streams last when the model stops by itself (Llama 2 /
Mistral spelling; the real one depends on the model's tokenizer)."""

FINISH_REASONS = {
    StopReason.END_TURN: "eos_token",
    StopReason.MAX_TOKENS: "length",
    StopReason.STOP_SEQUENCE: "stop_sequence",
}

_UNTAGGED = "data did not match any variant of untagged enum SagemakerRequest"


class TgiDialect:
    """TGI's `/invocations` (generate API; chat bodies go to the OpenAI-style dialect)."""

    name = "tgi"

    def __init__(self, model_name: str = "tgi") -> None:
        self._chat = OpenAIChatDialect(model_name, flavour="tgi")

    def parse(self, content_type: str | None, body: bytes, request_id: str) -> ContainerRequest:
        if not is_json_content_type(content_type):
            raise ContainerRejected(
                ContainerReply(
                    415, b"Expected request with `Content-Type: application/json`", PLAIN_TEXT
                )
            )
        try:
            value = load_json(body)
        except JsonInputError as exc:
            raise ContainerRejected(
                ContainerReply(
                    400,
                    f"Failed to parse the request body as JSON: {_serde_syntax(exc)}".encode(),
                    PLAIN_TEXT,
                )
            ) from None
        if isinstance(value, dict) and "inputs" not in value and "messages" in value:
            request = self._chat.parse(content_type, body, request_id)
            return ContainerRequest(
                request.generation,
                request.stream,
                request.prompt,
                {**request.options, "chat": True},
            )
        if not isinstance(value, dict) or not isinstance(value.get("inputs"), str):
            raise _deserialize_error(body)
        params = value.get("parameters") or {}
        stream = value.get("stream", False)
        if not isinstance(params, dict) or not isinstance(stream, bool):
            raise _deserialize_error(body)
        inputs: str = value["inputs"]
        sampling = _sampling(params, body)
        generation = GenerationRequest(
            messages=(ChatMessage("user", inputs),),
            sampling=sampling,
            request_id=request_id,
            raw_prompt=inputs,
        )
        options = {
            "details": bool(params.get("details", False)),
            "decoder_input_details": bool(params.get("decoder_input_details", False)),
            "return_full_text": bool(params.get("return_full_text") or False),
            "seed": params.get("seed"),
        }
        return ContainerRequest(generation, stream, inputs, options)

    def complete(
        self, request: ContainerRequest, pieces: Sequence[str], finish: Finish, input_tokens: int
    ) -> ContainerReply:
        if request.options.get("chat"):
            return self._chat.complete(request, pieces, finish, input_tokens)
        text = "".join(pieces)
        if finish.stop_reason is StopReason.STOP_SEQUENCE and finish.stop_sequence:
            # TGI keeps the stop sequence in the generated text.
            pieces = [*pieces, finish.stop_sequence]
            text += finish.stop_sequence
        generated = (request.prompt if request.options.get("return_full_text") else "") + text
        answer: dict[str, Any] = {"generated_text": generated}
        if request.options.get("details") or request.options.get("decoder_input_details"):
            tokens = [_token(piece) for piece in pieces]
            generated_tokens = len(tokens)
            if finish.stop_reason is StopReason.END_TURN:
                tokens.append(dict(EOS_TOKEN))
                generated_tokens += 1
            answer["details"] = {
                "finish_reason": FINISH_REASONS[finish.stop_reason],
                "generated_tokens": generated_tokens,
                "seed": request.options.get("seed"),
                "prefill": [],
                "tokens": tokens,
            }
        # compat_generate answers SageMaker with a list of one generation.
        return ContainerReply(200, compact_json([answer]), JSON_CONTENT_TYPE)

    def stream(self, request: ContainerRequest, input_tokens: int) -> ContainerStream:
        if request.options.get("chat"):
            return self._chat.stream(request, input_tokens)
        return TgiStream(request, input_tokens)

    def failure(self, message: str) -> ContainerReply:
        return ContainerReply(424, _generation_error(message), JSON_CONTENT_TYPE)

    def invalid(self, message: str) -> ContainerReply:
        return _validation_error(message).reply


class TgiStream:
    """TGI's generate_stream events; the last token is held back to carry `generated_text`."""

    content_type = EVENT_STREAM

    def __init__(self, request: ContainerRequest, input_tokens: int) -> None:
        self._request = request
        self._input_tokens = input_tokens
        self._pending: str | None = None
        self._index = 0
        self._texts: list[str] = []

    def start(self) -> list[bytes]:
        return []

    def token(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self._pending is not None:
            out.append(self._event(_token(self._pending), None, None))
            self._texts.append(self._pending)
        self._pending = text
        return out

    def finish(self, finish: Finish) -> list[bytes]:
        out: list[bytes] = []
        generated_tokens = finish.output_tokens
        if finish.stop_reason is StopReason.MAX_TOKENS:
            last = _token(self._pending or "")
            self._texts.append(self._pending or "")
        else:
            if self._pending is not None:
                out.append(self._event(_token(self._pending), None, None))
                self._texts.append(self._pending)
            if finish.stop_reason is StopReason.STOP_SEQUENCE and finish.stop_sequence:
                last = _token(finish.stop_sequence)
                self._texts.append(finish.stop_sequence)
            else:
                last = dict(EOS_TOKEN)
                generated_tokens += 1
        self._pending = None
        prefix = self._request.prompt if self._request.options.get("return_full_text") else ""
        details = None
        if self._request.options.get("details"):
            details = {
                "finish_reason": FINISH_REASONS[finish.stop_reason],
                "generated_tokens": generated_tokens,
                "seed": self._request.options.get("seed"),
                "input_length": self._input_tokens,
            }
        out.append(self._event(last, prefix + "".join(self._texts), details))
        return out

    def failure(self, message: str) -> list[bytes]:
        return [b"data:" + _generation_error(message) + b"\n\n"]

    def _event(
        self, token: dict[str, Any], generated_text: str | None, details: dict[str, Any] | None
    ) -> bytes:
        self._index += 1
        event = {
            "index": self._index,
            "token": token,
            "generated_text": generated_text,
            "details": details,
        }
        return b"data:" + compact_json(event) + b"\n\n"


def _token(text: str) -> dict[str, Any]:
    return {"id": token_id(text), "text": text, "logprob": 0.0, "special": False}


def _generation_error(message: str) -> bytes:
    return compact_json(
        {"error": f"Request failed during generation: {message}", "error_type": "generation"}
    )


def _validation_error(message: str) -> ContainerRejected:
    body = compact_json({"error": f"Input validation error: {message}", "error_type": "validation"})
    return ContainerRejected(ContainerReply(422, body, JSON_CONTENT_TYPE))


def _deserialize_error(body: bytes) -> ContainerRejected:
    line, column = json_position(body.rstrip())
    message = (
        f"Failed to deserialize the JSON body into the target type: {_UNTAGGED} "
        f"at line {line} column {column}"
    )
    return ContainerRejected(ContainerReply(422, message.encode(), PLAIN_TEXT))


def _sampling(params: dict[str, Any], body: bytes) -> SamplingParams:
    def number(key: str) -> float | None:
        value = params.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _deserialize_error(body)
        return float(value)

    temperature = number("temperature")
    top_p = number("top_p")
    top_k = number("top_k")
    max_new = number("max_new_tokens")
    seed = number("seed")
    stop = params.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _deserialize_error(body)
    if temperature is not None and temperature <= 0:
        raise _validation_error("`temperature` must be strictly positive")
    if top_p is not None and not 0 < top_p < 1:
        raise _validation_error("`top_p` must be > 0.0 and < 1.0")
    if top_k is not None and top_k <= 0:
        raise _validation_error("`top_k` must be strictly positive")
    if max_new is not None and max_new <= 0:
        raise _validation_error("`max_new_tokens` must be strictly positive")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise _validation_error(
            f"`stop` supports up to {MAX_STOP_SEQUENCES} stop sequences. Given: {len(stop)}"
        )
    return SamplingParams(
        max_tokens=int(max_new) if max_new is not None else DEFAULT_MAX_NEW_TOKENS,
        temperature=temperature,
        top_p=top_p,
        top_k=int(top_k) if top_k is not None else None,
        stop_sequences=tuple(stop),
        seed=int(seed) if seed is not None else None,
    )


def _serde_syntax(exc: JsonInputError) -> str:
    """A JSON syntax error worded as serde_json words it (message kinds approximated)."""
    if "surrogate" in exc.reason:
        kind = "lone leading surrogate in hex escape"
    elif "nesting" in exc.reason or "depth" in exc.reason:
        kind = "recursion limit exceeded"
    elif exc.at_end or "end of data" in exc.reason:
        kind = "EOF while parsing a value"
    elif "after document" in exc.reason:
        kind = "trailing characters"
    else:
        kind = "expected value"
    return f"{kind} at line {exc.line} column {exc.column}"
