"""The scripted engine: deterministic answers without a model, for tests and benchmarks.

By default it echoes the last user message (`Echo: <text>`); configured `text` replaces that, and
`token_count` repeats or truncates the answer to exactly that many tokens. Tokens are words with
their leading space and single punctuation marks. `delay_ms` waits between tokens and
`first_token_delay_ms` before the first, so tests can observe streaming and disconnects.
`fail_after_tokens` makes it fail like a broken model after that many tokens (0: before any).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from outcrop.engines.base import Engine, EngineError
from outcrop.types import (
    EngineHealth,
    Finish,
    GenerationEvent,
    GenerationRequest,
    StopReason,
    TokenEvent,
)

_TOKEN = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+$")


def tokenize(text: str) -> list[str]:
    """Split text into scripted-engine tokens; joining them gives back the text (minus
    whitespace between the last token and the end)."""
    return _TOKEN.findall(text)


@dataclass(frozen=True, slots=True)
class ScriptedConfig:
    text: str | None = None
    token_count: int | None = None
    delay_ms: float = 0.0
    first_token_delay_ms: float = 0.0
    fail_after_tokens: int | None = None


class ScriptedEngine(Engine):
    """Answers every request from a script; always ready."""

    def __init__(self, config: ScriptedConfig | None = None, name: str = "scripted") -> None:
        self.config = config or ScriptedConfig()
        self.name = name

    def health(self) -> EngineHealth:
        return EngineHealth(ready=True, state="ready")

    def count_tokens(self, request: GenerationRequest) -> int:
        return len(tokenize(_prompt_text(request)))

    def answer_tokens(self, request: GenerationRequest) -> list[str]:
        """The full scripted answer, before max_tokens and stop sequences apply."""
        if self.config.text is not None:
            text = self.config.text
        else:
            users = [m.text for m in request.messages if m.role == "user"]
            last = users[-1] if users else (request.raw_prompt or "")
            text = "Echo: " + " ".join(last.split())
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

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        tokens = self.answer_tokens(request)
        input_tokens = self.count_tokens(request)
        sampling = request.sampling
        emitted = ""
        produced = 0
        stop_reason = StopReason.END_TURN
        matched: str | None = None
        for index, token in enumerate(tokens):
            if self.config.fail_after_tokens is not None and index >= self.config.fail_after_tokens:
                raise EngineError(f"scripted failure after {index} tokens")
            if produced >= sampling.max_tokens:
                stop_reason = StopReason.MAX_TOKENS
                break
            delay = self.config.first_token_delay_ms if index == 0 else self.config.delay_ms
            if delay > 0:
                await asyncio.sleep(delay / 1000)
            hit = None
            if sampling.stop_sequences:
                candidate = emitted + token
                hit = _first_stop(candidate, len(emitted), sampling.stop_sequences)
                emitted = candidate
            if hit is not None:
                position, matched = hit
                piece = token[: max(0, position - (len(emitted) - len(token)))]
                produced += 1
                if piece:
                    yield TokenEvent(piece)
                stop_reason = StopReason.STOP_SEQUENCE
                break
            produced += 1
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


def _prompt_text(request: GenerationRequest) -> str:
    if request.raw_prompt is not None:
        return request.raw_prompt
    return "\n".join(f"{m.role}: {m.text}" for m in request.messages)
