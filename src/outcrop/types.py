"""Neutral value types shared by dialects, services and engines.

A dialect turns a provider's JSON into a `GenerationRequest`; an engine turns that request into a
stream of `TokenEvent`s ending in one `Finish`. Nothing here knows a wire format or a provider.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation, already flattened to text."""

    role: Role
    text: str


class StopReason(enum.Enum):
    """Why an engine stopped generating, independent of any provider's spelling."""

    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Sampling knobs an engine honours; `None` means the engine's default."""

    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """A model-agnostic request: messages (the first may be a system turn) and sampling."""

    messages: tuple[ChatMessage, ...]
    sampling: SamplingParams
    request_id: str = ""
    raw_prompt: str | None = None
    """A complete prompt that bypasses the chat template (legacy completion-style bodies)."""

    @property
    def system(self) -> str | None:
        texts = [m.text for m in self.messages if m.role == "system"]
        return "\n\n".join(texts) if texts else None


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """A piece of generated text: one or more tokens decoded together."""

    text: str
    token_count: int = 1


@dataclass(frozen=True, slots=True)
class Finish:
    """The last event of every generation, with the usage the engine measured."""

    stop_reason: StopReason
    input_tokens: int
    output_tokens: int
    stop_sequence: str | None = None


GenerationEvent = TokenEvent | Finish


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts and latencies of one invocation, as Bedrock reports them."""

    input_tokens: int
    output_tokens: int
    invocation_latency_ms: int
    first_byte_latency_ms: int


@dataclass(slots=True)
class EngineHealth:
    """Readiness of one engine; `detail` explains a state that is not ready."""

    ready: bool
    state: Literal["loading", "ready", "failed"]
    detail: str = ""
    extra: dict[str, object] = field(default_factory=dict)


# --- embeddings -------------------------------------------------------------------------------

Truncation = Literal["error", "drop_start", "drop_end"]
"""What an embedding engine does with a text longer than the request's token limit."""


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """Texts to embed, with the per-text token limit of the model family being emulated."""

    texts: tuple[str, ...]
    max_input_tokens: int | None = None
    """Per-text limit in the engine's tokens; None: any length (long texts are windowed)."""
    truncation: Truncation = "error"


@dataclass(frozen=True, slots=True)
class TextEmbedding:
    """One text's vector in the engine's native space (not normalized) and its token count."""

    vector: tuple[float, ...]
    input_tokens: int
