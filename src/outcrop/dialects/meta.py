"""Meta Llama (2, 3.x, 4) on InvokeModel: `prompt` + `max_gen_len` (docs/dialects.md §2.4).

The prompt is raw text: Bedrock applies no chat template. How it reaches the served model is
decided in `dialects/prompts.py`: a prompt written in Llama's chat markup (Llama 3
`<|start_header_id|>` headers, Llama 2 `[INST]`/`<<SYS>>`) is split into turns, so the served
model (which is not Llama) gets them through its own chat template and answers the last user
turn; a plain prompt is continued as raw text (`GenerationRequest.raw_prompt`), as Bedrock does.

Response: `{"generation", "prompt_token_count", "generation_token_count", "stop_reason"}` with
`stop` or `length`. Stream, as recorded: one object per token with `prompt_token_count` only on
the first and a cumulative `generation_token_count`; when the length limit ends it, the last
token's object carries `stop_reason: "length"`; when the model stops, a final object with empty
`generation` carries `stop_reason: "stop"`. The last object carries the invocation metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from outcrop.dialects.base import (
    METRICS_KEY,
    Completion,
    InvokeCall,
    Obj,
    TextOnlyEncoder,
    invocation_metrics,
)
from outcrop.dialects.prompts import completion_request
from outcrop.dialects.schema import Field, check_object, malformed
from outcrop.types import Finish, GenerationRequest, SamplingParams, StopReason, Usage
from outcrop.wire.errors import ValidationException

DEFAULT_MAX_TOKENS = 512  # documented default of max_gen_len

FIELDS: dict[str, Field] = {
    "prompt": Field("string", required=True),
    "temperature": Field("number", minimum=0, maximum=1),
    "top_p": Field("number", minimum=0, maximum=1),
    "max_gen_len": Field("integer", minimum=1, maximum=2048),
    "images": Field("array"),  # Llama 3.2 vision
}


def stop_reason(stop: StopReason) -> str:
    return "length" if stop is StopReason.MAX_TOKENS else "stop"


@dataclass(frozen=True, slots=True)
class LlamaInvocation:
    request: GenerationRequest

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        return []

    def response(self, output: Completion, model_name: str) -> Obj:
        finish = output.finish
        return {
            "generation": output.text,
            "prompt_token_count": finish.input_tokens,
            "generation_token_count": finish.output_tokens,
            "stop_reason": stop_reason(finish.stop_reason),
        }

    def stream(self, model_name: str, input_tokens: int) -> LlamaStream:
        return LlamaStream(input_tokens)


class LlamaStream(TextOnlyEncoder):
    """Per-token objects, holding one back so a length stop can ride on the last token."""

    def __init__(self, input_tokens: int) -> None:
        self.input_tokens = input_tokens
        self._held: str | None = None
        self._count = 0
        self._sent = 0

    def _object(self, text: str, count: int, reason: str | None) -> Obj:
        first = self._sent == 0
        self._sent += 1
        return {
            "generation": text,
            "prompt_token_count": self.input_tokens if first else None,
            "generation_token_count": count,
            "stop_reason": reason,
        }

    def text(self, piece: str) -> list[Obj]:
        out = [] if self._held is None else [self._object(self._held, self._count, None)]
        self._held = piece
        self._count += 1
        return out

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        reason = stop_reason(finish.stop_reason)
        out: list[Obj] = []
        if self._held is not None and reason == "length":
            last = self._object(self._held, finish.output_tokens, reason)
        else:
            if self._held is not None:
                out.append(self._object(self._held, self._count, None))
            last = self._object("", finish.output_tokens, reason)
        last[METRICS_KEY] = invocation_metrics(usage)
        return [*out, last]


class LlamaDialect:
    """Meta Llama bodies."""

    def parse(self, body: Obj, call: InvokeCall) -> LlamaInvocation:
        problems = check_object(body, FIELDS)
        if problems:
            raise malformed(problems)
        if body.get("images"):
            raise ValidationException(
                "The model served here does not accept image input. Remove it and try again."
            )
        temperature = body.get("temperature")
        top_p = body.get("top_p")
        sampling = SamplingParams(
            max_tokens=int(body.get("max_gen_len", DEFAULT_MAX_TOKENS)),
            temperature=None if temperature is None else float(temperature),
            top_p=None if top_p is None else float(top_p),
        )
        return LlamaInvocation(completion_request(body["prompt"], sampling, call.request_id))
