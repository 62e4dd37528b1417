"""DeepSeek R1 (and V3.1) on InvokeModel: `prompt` completions (docs/dialects.md §2.8).

Request: `prompt`, `temperature`, `top_p`, `max_tokens` (1-32768), `stop` (at most 10). A prompt
in DeepSeek's chat markup (`<｜User｜>...<｜Assistant｜>`) is split into turns for the served
model; plain text is continued raw (`dialects/prompts.py`). R1 always reasons, so its requests
ask the engine for reasoning.

Response per the AWS docs: `{"choices": [{"text", "stop_reason"}]}` with `stop` or `length`;
R1's reasoning is inline in `text`, ended by `</think>` (the prompt conventionally opens the
`<think>` block), so text = reasoning + "\\n</think>\\n\\n" + answer when the engine reasoned.
LiteLLM instead parses this model with its Llama parser; the AWS doc shape is used
(dialects.md §2.8, §7). Stream (inferred): `{"choices": [{"text", "stop_reason": null}]}` per
piece, then `{"choices": [{"text": "", "stop_reason"}]}` with the invocation metrics, whose
`stop_reason` langchain-aws stops on.
"""

from __future__ import annotations

from dataclasses import dataclass

from outcrop.dialects.base import (
    METRICS_KEY,
    Completion,
    InvokeCall,
    Obj,
    invocation_metrics,
)
from outcrop.dialects.prompts import completion_request
from outcrop.dialects.schema import Field, check_object, check_value, malformed
from outcrop.types import (
    Finish,
    GenerationRequest,
    ReasoningConfig,
    SamplingParams,
    StopReason,
    ToolCallEvent,
    Usage,
)

DEFAULT_MAX_TOKENS = 8192  # unverified default
THINK_END = "\n</think>\n\n"

FIELDS: dict[str, Field] = {
    "prompt": Field("string", required=True),
    "temperature": Field("number", minimum=0, maximum=1),
    "top_p": Field("number", minimum=0, maximum=1),
    "max_tokens": Field("integer", minimum=1, maximum=32768),
    "stop": Field("array", max_items=10),
}


def stop_reason(stop: StopReason) -> str:
    return "length" if stop is StopReason.MAX_TOKENS else "stop"


def inline_text(reasoning: str, text: str) -> str:
    """R1's single text field: reasoning, the end of the think block, then the answer."""
    return reasoning + THINK_END + text if reasoning else text


@dataclass(frozen=True, slots=True)
class DeepSeekInvocation:
    request: GenerationRequest

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        return []

    def response(self, output: Completion, model_name: str) -> Obj:
        text = inline_text(output.reasoning, output.text)
        return {"choices": [{"text": text, "stop_reason": stop_reason(output.finish.stop_reason)}]}

    def stream(self, model_name: str, input_tokens: int) -> DeepSeekStream:
        return DeepSeekStream()


class DeepSeekStream:
    """Per-piece `choices` objects; reasoning first, then `</think>`, then the answer."""

    def __init__(self) -> None:
        self._reasoning_open = False

    @staticmethod
    def _piece(text: str) -> Obj:
        return {"choices": [{"text": text, "stop_reason": None}]}

    def start(self) -> list[Obj]:
        return []

    def reasoning(self, piece: str) -> list[Obj]:
        self._reasoning_open = True
        return [self._piece(piece)]

    def _close_reasoning(self) -> list[Obj]:
        if not self._reasoning_open:
            return []
        self._reasoning_open = False
        return [self._piece(THINK_END)]

    def text(self, piece: str) -> list[Obj]:
        return [*self._close_reasoning(), self._piece(piece)]

    def tool_call(self, event: ToolCallEvent) -> list[Obj]:
        return []

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        last = {
            "choices": [{"text": "", "stop_reason": stop_reason(finish.stop_reason)}],
            METRICS_KEY: invocation_metrics(usage),
        }
        return [*self._close_reasoning(), last]


class DeepSeekDialect:
    """DeepSeek prompt bodies; `reasons` is True for R1."""

    def __init__(self, reasons: bool = True) -> None:
        self.reasons = reasons

    def parse(self, body: Obj, call: InvokeCall) -> DeepSeekInvocation:
        problems = check_object(body, FIELDS)
        if not problems:
            problems = [
                p
                for i, stop in enumerate(body.get("stop") or [])
                for p in check_value(stop, Field("string"), f"#/stop/{i}")
            ]
        if problems:
            raise malformed(problems)
        temperature = body.get("temperature")
        top_p = body.get("top_p")
        sampling = SamplingParams(
            max_tokens=int(body.get("max_tokens", DEFAULT_MAX_TOKENS)),
            temperature=None if temperature is None else float(temperature),
            top_p=None if top_p is None else float(top_p),
            stop_sequences=tuple(body.get("stop") or ()),
        )
        reasoning = ReasoningConfig() if self.reasons else None
        request = completion_request(body["prompt"], sampling, call.request_id, reasoning=reasoning)
        return DeepSeekInvocation(request)
