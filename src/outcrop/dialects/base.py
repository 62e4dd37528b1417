"""The interface every InvokeModel body dialect implements, and what all dialects share.

A dialect's `parse` validates one request body and returns a `ParsedInvocation`: the neutral
`GenerationRequest` plus whatever the family needs from the body to answer it (the legacy or
chat form, the prompt to echo, ...). The invocation builds the non-streaming response body from
a `Completion` (all engine output of one generation, gathered by `CompletionBuilder`) or a
`StreamEncoder` that turns engine events into the family's stream objects one by one. Both paths
see the same events, so a stream's concatenated text equals the non-streaming answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from outcrop.types import (
    Finish,
    GenerationEvent,
    GenerationRequest,
    TokenEvent,
    ToolCall,
    ToolCallEvent,
    Usage,
)

Obj = dict[str, Any]
_BASE62 = string.digits + string.ascii_letters


@dataclass(frozen=True, slots=True)
class Completion:
    """Everything one generation produced, in the order engines emit it (reasoning first)."""

    text: str
    reasoning: str
    tool_calls: tuple[ToolCall, ...]
    finish: Finish


class CompletionBuilder:
    """Gathers engine events into a `Completion` (the non-streaming path)."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[str, tuple[str, list[str]]] = {}
        self.finish: Finish | None = None

    def add(self, event: GenerationEvent) -> None:
        if isinstance(event, TokenEvent):
            (self._reasoning if event.kind == "reasoning" else self._text).append(event.text)
        elif isinstance(event, ToolCallEvent):
            self._calls.setdefault(event.call_id, (event.name, []))[1].append(event.arguments)
        else:
            self.finish = event

    def build(self) -> Completion:
        assert self.finish is not None, "the engine did not finish"
        calls = tuple(
            ToolCall(call_id, name, "".join(parts))
            for call_id, (name, parts) in self._calls.items()
        )
        return Completion("".join(self._text), "".join(self._reasoning), calls, self.finish)


class StreamEncoder(Protocol):
    """Turns engine output into the family's stream objects, in order."""

    def start(self) -> list[Obj]: ...

    def reasoning(self, piece: str) -> list[Obj]: ...

    def text(self, piece: str) -> list[Obj]: ...

    def tool_call(self, event: ToolCallEvent) -> list[Obj]: ...

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]: ...


@dataclass(frozen=True, slots=True)
class InvokeCall:
    """What a dialect may need to know about the call besides its body."""

    request_id: str = ""
    model_id: str = ""
    """The foundation model's ID (after resolving profiles and ARNs)."""
    streaming: bool = False
    """True for InvokeModelWithResponseStream."""


class ParsedInvocation(Protocol):
    """One parsed request of a family: the neutral request and how to answer it."""

    @property
    def request(self) -> GenerationRequest: ...

    def response(self, output: Completion, model_name: str) -> Obj:
        """The non-streaming response body."""
        ...

    def stream(self, model_name: str, input_tokens: int) -> StreamEncoder:
        """An encoder for one streaming response."""
        ...

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        """Family-specific headers of the non-streaming response (beside the token counts)."""
        ...


class InvokeDialect(Protocol):
    """Body format of one model family for InvokeModel / InvokeModelWithResponseStream."""

    def parse(self, body: Obj, call: InvokeCall) -> ParsedInvocation:
        """Validate and translate; raise ValidationException as Bedrock would."""
        ...


class TextOnlyEncoder:
    """Base for families whose stream carries answer text only: reasoning and tool-call events
    are dropped (those families have no field for them)."""

    def start(self) -> list[Obj]:
        return []

    def reasoning(self, piece: str) -> list[Obj]:
        return []

    def tool_call(self, event: ToolCallEvent) -> list[Obj]:
        return []


def stream_events(encoder: StreamEncoder, event: TokenEvent | ToolCallEvent) -> list[Obj]:
    """Dispatch one non-final engine event to the encoder."""
    if isinstance(event, ToolCallEvent):
        return encoder.tool_call(event)
    if event.kind == "reasoning":
        return encoder.reasoning(event.text)
    return encoder.text(event.text)


def invocation_metrics(usage: Usage, *, cache: bool = False) -> dict[str, int]:
    """The `amazon-bedrock-invocationMetrics` object on every family's last stream object."""
    metrics = {
        "inputTokenCount": usage.input_tokens,
        "outputTokenCount": usage.output_tokens,
        "invocationLatency": usage.invocation_latency_ms,
        "firstByteLatency": usage.first_byte_latency_ms,
    }
    if cache:
        metrics["cacheReadInputTokenCount"] = 0
        metrics["cacheWriteInputTokenCount"] = 0
    return metrics


METRICS_KEY = "amazon-bedrock-invocationMetrics"


def base62_id(prefix: str, length: int = 24) -> str:
    """`prefix` + random base62 characters (`msg_bdrk_…`, `toolu_bdrk_…`)."""
    return prefix + "".join(secrets.choice(_BASE62) for _ in range(length))


def new_uuid() -> str:
    return str(uuid.uuid4())


def reasoning_signature(reasoning: str) -> str:
    """An opaque, deterministic stand-in for a provider's reasoning signature (base64)."""
    digest = hashlib.sha256(reasoning.encode()).digest()
    return base64.b64encode(b"outcrop-reasoning-v1:" + digest).decode("ascii")


class CallIds:
    """Maps an engine's tool-call IDs to provider-style IDs, stable within one response."""

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self._ids: dict[str, str] = {}

    def __call__(self, engine_id: str) -> str:
        if engine_id not in self._ids:
            self._ids[engine_id] = self._make()
        return self._ids[engine_id]


def arguments_object(text: str) -> Any:
    """A tool call's input as a JSON value; a call cut short (max_tokens) keeps its raw text."""
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return {"_partial_json": text}
