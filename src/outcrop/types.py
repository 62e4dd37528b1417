"""Neutral value types shared by dialects, services and engines.

A dialect turns a provider's JSON into a `GenerationRequest`; an engine turns that request into a
stream of `TokenEvent`s (answer text or reasoning) and `ToolCallEvent`s ending in one `Finish`.
Nothing here knows a wire format or a provider.

Tool use, neutrally: a request offers `ToolSpec`s and a `ToolChoice`; an engine answers with
`ToolCallEvent` fragments (the first fragment of a call names it, later ones add argument JSON
text) and finishes with `StopReason.TOOL_USE`; the application's next request carries the call
back as `ChatMessage.tool_calls` on the assistant turn and its result as
`ChatMessage.tool_results` on the following user turn. Reasoning ("thinking"): a request may ask
for it with `ReasoningConfig`; an engine reports it as `TokenEvent(kind="reasoning")` before the
answer text.

Structured output: a request may carry `response_schema`, a JSON schema the answer text must
follow; an engine then answers with JSON valid for it (a grammar constrains generation) and
finishes with `END_TURN` (or `MAX_TOKENS` when cut short).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call the model made in an earlier turn."""

    call_id: str
    """The provider's ID of the call (`toolu_bdrk_...`, `tooluse_...`), echoed by its result."""
    name: str
    arguments: str
    """The call's input as JSON text (an object)."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What the application's tool returned for one `ToolCall`, flattened to text."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation, already flattened to text.

    An assistant turn may carry the tool calls it made (`tool_calls`, after its `text`); a user
    turn may carry the results of those calls (`tool_results`, before its `text`).
    """

    role: Role
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()


class StopReason(enum.Enum):
    """Why an engine stopped generating, independent of any provider's spelling."""

    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_USE = "tool_use"
    """The model called one or more tools and waits for their results."""


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
class ToolSpec:
    """A tool offered to the model: its name, description and the JSON schema of its input."""

    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})


ToolChoiceMode = Literal["auto", "any", "tool", "none"]


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """How the model may use the offered tools.

    `auto`: it decides; `any`: it must call some tool; `tool`: it must call `name`; `none`: it
    must not call a tool (the tools stay in the prompt).
    """

    mode: ToolChoiceMode = "auto"
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.mode == "tool") != (self.name is not None):
            raise ValueError("a name is given exactly when mode is 'tool'")


@dataclass(frozen=True, slots=True)
class ReasoningConfig:
    """A request for reasoning ("thinking") before the answer.

    `budget_tokens` caps reasoning tokens (Claude's `thinking.budget_tokens`); `effort` is the
    coarse knob of gpt-oss-style models. Either may be None: the engine's default.
    """

    budget_tokens: int | None = None
    effort: Literal["low", "medium", "high"] | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """A model-agnostic request: messages (the first may be a system turn) and sampling."""

    messages: tuple[ChatMessage, ...]
    sampling: SamplingParams
    request_id: str = ""
    raw_prompt: str | None = None
    """A complete prompt that bypasses the chat template (legacy completion-style bodies)."""
    tools: tuple[ToolSpec, ...] = ()
    """Tools the model may call; empty: no tool use."""
    tool_choice: ToolChoice = ToolChoice()
    reasoning: ReasoningConfig | None = None
    """Reasoning requested; None: not requested (a model that always reasons may still)."""
    priority: int = 0
    """Scheduling priority in an engine's queue: lower runs first (see services.request_options)."""
    cache_point: int | None = None
    """Bedrock prompt caching: the prompt prefix up to the request's last cache point is the
    system text (and tools) plus this many non-system messages; None: no cache point."""
    response_schema: Mapping[str, Any] | None = None
    """A JSON schema the answer text must follow (structured output); None: free text."""

    @property
    def system(self) -> str | None:
        texts = [m.text for m in self.messages if m.role == "system"]
        return "\n\n".join(texts) if texts else None


TokenKind = Literal["text", "reasoning"]


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """A piece of generated text: one or more tokens decoded together.

    `kind="reasoning"` marks the model's reasoning ("thinking"), which engines emit before the
    answer text; dialects without a reasoning field drop it.
    """

    text: str
    token_count: int = 1
    kind: TokenKind = "text"


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """A fragment of a tool call the model is making.

    The first fragment of a call carries its `call_id` and `name` and may have empty
    `arguments`; every later fragment of the same call repeats `call_id` and `name` and adds
    more of the argument JSON text. Concatenated, the fragments of one call are a JSON object.
    `call_id` is the engine's own (unique within one generation); dialects may show their
    provider's ID form instead.
    """

    call_id: str
    name: str
    arguments: str = ""
    token_count: int = 0


@dataclass(frozen=True, slots=True)
class Finish:
    """The last event of every generation, with the usage the engine measured."""

    stop_reason: StopReason
    input_tokens: int
    output_tokens: int
    stop_sequence: str | None = None
    cache_read_input_tokens: int | None = None
    """Of `input_tokens`, those up to the request's cache point that the engine reused from its
    prompt (prefix) cache; None when the request has no cache point (or the engine no cache)."""
    cache_write_input_tokens: int | None = None
    """Of `input_tokens`, those up to the cache point that the engine evaluated and cached."""


GenerationEvent = TokenEvent | ToolCallEvent | Finish


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
