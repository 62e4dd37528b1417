"""The scripted engine: deterministic answers without a model, for tests and benchmarks.

By default it echoes the last user message (`Echo: <text>`); configured `text` replaces that, and
`token_count` repeats or truncates the answer to exactly that many tokens. Tokens are words with
their leading space and single punctuation marks. `delay_ms` waits between tokens and
`first_token_delay_ms` before the first, so tests can observe streaming and disconnects.

Structured output: a request with a `response_schema` (and no configured `text`) is answered
with `schema_example(schema)` as JSON text, valid for the schema and the same every time.

Reasoning: when the request asks for it (`GenerationRequest.reasoning`), the engine first emits
reasoning tokens: the configured `reasoning` text, else `Thinking about: <last user text>`,
capped by the request's `budget_tokens`.

Tool calls: when tools are offered and the choice is not `none`, the engine calls tools instead
of answering, unless the last user turn carries tool results (then it answers with text, by
default `Echo: <the results>`, so an application's tool loop ends). It calls the configured
`tool_calls` (name and JSON arguments) or, by default, one call to the forced tool (`tool`
choice) or else the first offered tool, with arguments built from the tool's JSON schema
(`schema_example`). Argument JSON streams in fragments (one token each), the first fragment of
each call empty as on Bedrock; the generation ends with `StopReason.TOOL_USE`. When calling
tools, answer text comes first only if `text` is configured.

`fail_after_tokens` makes it fail like a broken model after that many tokens (0: before any).
`load_ms` makes it load like a real model (not ready, `EngineNotReady`, until `start()` has
waited that long) and `load_error` makes loading fail (then `EngineUnavailable`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from outcrop.engines.base import Engine, EngineError, EngineNotReady, EngineUnavailable
from outcrop.types import (
    EngineHealth,
    Finish,
    GenerationEvent,
    GenerationRequest,
    StopReason,
    TokenEvent,
    TokenKind,
    ToolCallEvent,
)

_TOKEN = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+$")


def tokenize(text: str) -> list[str]:
    """Split text into scripted-engine tokens; joining them gives back the text (minus
    whitespace between the last token and the end)."""
    return _TOKEN.findall(text)


@dataclass(frozen=True, slots=True)
class ScriptedToolCall:
    """A tool call the scripted engine makes: the tool's name and its arguments as JSON text."""

    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class ScriptedConfig:
    text: str | None = None
    token_count: int | None = None
    delay_ms: float = 0.0
    first_token_delay_ms: float = 0.0
    fail_after_tokens: int | None = None
    load_ms: float = 0.0
    load_error: str | None = None
    reasoning: str | None = None
    """Reasoning text emitted when a request asks for reasoning (None: a default text)."""
    tool_calls: tuple[ScriptedToolCall, ...] | None = None
    """Tool calls made when tools are offered (None: one call derived from the tool schema)."""


@dataclass(frozen=True, slots=True)
class _Step:
    """One event of the script before max_tokens and stop sequences apply."""

    kind: TokenKind | None  # None: a tool-call fragment
    text: str
    call_id: str = ""
    name: str = ""
    tokens: int = 1


class ScriptedEngine(Engine):
    """Answers every request from a script; ready at once unless told to load slowly or fail."""

    def __init__(self, config: ScriptedConfig | None = None, name: str = "scripted") -> None:
        self.config = config or ScriptedConfig()
        self.name = name
        slow = self.config.load_ms > 0 or self.config.load_error is not None
        self._state: Literal["loading", "ready", "failed"] = "loading" if slow else "ready"
        self._detail = "loading (scripted)" if slow else ""

    def health(self) -> EngineHealth:
        return EngineHealth(ready=self._state == "ready", state=self._state, detail=self._detail)

    async def start(self) -> None:
        if self.config.load_ms > 0:
            await asyncio.sleep(self.config.load_ms / 1000)
        if self.config.load_error is not None:
            self._state, self._detail = "failed", self.config.load_error
        else:
            self._state, self._detail = "ready", ""

    def count_tokens(self, request: GenerationRequest) -> int:
        return len(tokenize(prompt_text(request)))

    def answer_tokens(self, request: GenerationRequest) -> list[str]:
        """The full scripted answer, before max_tokens and stop sequences apply."""
        if self.config.text is not None:
            text = self.config.text
        elif request.response_schema is not None:
            text = json.dumps(schema_example(request.response_schema))
        else:
            text = "Echo: " + " ".join(_last_user_text(request).split())
        tokens = tokenize(text) or ["."]
        wanted = self.config.token_count
        if wanted is not None:
            base = tokens
            tokens = [
                base[i % len(base)]
                if i < len(base) or base[i % len(base)][:1].isspace()
                else " " + base[i % len(base)]
                for i in range(wanted)
            ]
        return tokens

    def reasoning_tokens(self, request: GenerationRequest) -> list[str]:
        """The scripted reasoning, or nothing when the request does not ask for it."""
        if request.reasoning is None:
            return []
        if self.config.reasoning is not None:
            text = self.config.reasoning
        else:
            text = "Thinking about: " + " ".join(_last_user_text(request).split())
        tokens = tokenize(text) or ["."]
        budget = request.reasoning.budget_tokens
        return tokens[:budget] if budget is not None else tokens

    def planned_tool_calls(self, request: GenerationRequest) -> list[ScriptedToolCall]:
        """The tool calls this request gets (none when no tool may or need be called)."""
        if not request.tools or request.tool_choice.mode == "none":
            return []
        users = [m for m in request.messages if m.role == "user"]
        if users and users[-1].tool_results:
            return []
        if self.config.tool_calls is not None:
            return list(self.config.tool_calls)
        by_name = {tool.name: tool for tool in request.tools}
        forced = request.tool_choice.name
        tool = by_name.get(forced, request.tools[0]) if forced else request.tools[0]
        arguments = schema_example(tool.input_schema)
        return [ScriptedToolCall(tool.name, json.dumps(arguments))]

    def _script(self, request: GenerationRequest) -> list[_Step]:
        steps = [_Step("reasoning", t) for t in self.reasoning_tokens(request)]
        calls = self.planned_tool_calls(request)
        if not calls or self.config.text is not None:
            steps += [_Step("text", t) for t in self.answer_tokens(request)]
        for index, call in enumerate(calls):
            call_id = f"call_{index}"
            steps.append(_Step(None, "", call_id, call.name, tokens=0))
            steps += [_Step(None, piece, call_id, call.name) for piece in tokenize(call.arguments)]
        return steps

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        if self._state == "loading":
            raise EngineNotReady(f"engine {self.name!r} is still loading")
        if self._state == "failed":
            raise EngineUnavailable(f"engine {self.name!r} failed to load: {self._detail}")
        steps = self._script(request)
        calls_tools = any(step.kind is None for step in steps)
        input_tokens = self.count_tokens(request)
        sampling = request.sampling
        emitted = ""
        produced = 0
        stop_reason = StopReason.TOOL_USE if calls_tools else StopReason.END_TURN
        matched: str | None = None
        for index, step in enumerate(steps):
            if self.config.fail_after_tokens is not None and index >= self.config.fail_after_tokens:
                raise EngineError(f"scripted failure after {index} tokens")
            if step.tokens and produced >= sampling.max_tokens:
                stop_reason = StopReason.MAX_TOKENS
                break
            delay = self.config.first_token_delay_ms if index == 0 else self.config.delay_ms
            if delay > 0:
                await asyncio.sleep(delay / 1000)
            produced += step.tokens
            if step.kind is None:
                yield ToolCallEvent(step.call_id, step.name, step.text, step.tokens)
                continue
            if step.kind == "reasoning":
                yield TokenEvent(step.text, kind="reasoning")
                continue
            token = step.text
            hit = None
            if sampling.stop_sequences:
                candidate = emitted + token
                hit = _first_stop(candidate, len(emitted), sampling.stop_sequences)
                emitted = candidate
            if hit is not None:
                position, matched = hit
                piece = token[: max(0, position - (len(emitted) - len(token)))]
                if piece:
                    yield TokenEvent(piece)
                stop_reason = StopReason.STOP_SEQUENCE
                break
            yield TokenEvent(token)
        yield Finish(stop_reason, input_tokens, produced, matched)


def _first_stop(text: str, start: int, stops: tuple[str, ...]) -> tuple[int, str] | None:
    """The earliest stop sequence ending after `start` in `text`, as (index, sequence)."""
    best: tuple[int, str] | None = None
    for stop in stops:
        if not stop:
            continue
        index = text.find(stop, max(0, start - len(stop) + 1))
        if index != -1 and (best is None or index < best[0]):
            best = (index, stop)
    return best


def prompt_text(request: GenerationRequest) -> str:
    """The prompt as `role: text` lines (or the raw prompt), what scripted counts tokens of."""
    if request.raw_prompt is not None:
        return request.raw_prompt
    return "\n".join(f"{m.role}: {m.text}" for m in request.messages)


def _last_user_text(request: GenerationRequest) -> str:
    users = [m for m in request.messages if m.role == "user"]
    if not users:
        return request.raw_prompt or ""
    last = users[-1]
    results = [r.content for r in last.tool_results]
    return " ".join([*results, last.text]) if results else last.text


_MAX_EXAMPLE_ITEMS = 16
"""An example array stops here whatever `minItems` asks (a client's schema must not make the
engine build a huge value)."""


def schema_example(schema: Mapping[str, Any]) -> Any:
    """A deterministic value that validates against a (simple) JSON schema.

    Objects get their required properties (all properties when none are required); strings
    their first enum value, `default` or the word `scripted`; numbers their minimum or 1.
    """
    if not isinstance(schema, Mapping):  # `true` (anything goes) or `false`
        return "scripted"
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    for union in ("anyOf", "oneOf"):
        if schema.get(union):
            return schema_example(schema[union][0])
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    match kind:
        case "object":
            properties: Mapping[str, Any] = schema.get("properties", {})
            names = schema.get("required") or list(properties)
            return {name: schema_example(properties.get(name, {})) for name in names}
        case "array":
            count = min(max(1, int(schema.get("minItems", 1))), _MAX_EXAMPLE_ITEMS)
            return [schema_example(schema.get("items", {})) for _ in range(count)]
        case "integer":
            return int(schema.get("minimum", 1))
        case "number":
            return float(schema.get("minimum", 1))
        case "boolean":
            return True
        case "null":
            return None
    word = "scripted"
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    if len(word) < low:
        word = (word * (low // len(word) + 1))[:low]
    return word[: int(high)] if high is not None else word
