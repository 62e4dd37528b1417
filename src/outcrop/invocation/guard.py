"""The output side of a guardrail on a model invocation, shared by InvokeModel and Converse.

`Guard` holds one call's guardrail state (its input assessment, the output assessments, the
model's original output) and wraps the engine's events (`events`): the blocked answer when the
prompt was blocked (the model is not called), else the engine's events with the answer checked.
Non-streaming, the whole answer is checked at the end; streaming synchronously, text pieces are
held back and checked in chunks of `stream_chunk_chars` (masks laid back onto the pieces,
`guardrails.streaming`); asynchronously, pieces go out at once and chunks are checked as they
complete. When a chunk is blocked, generation stops and the rest of the answer is the
`blockedOutputsMessaging`, followed by a normal finish, so the family's encoder ends the stream
as it ends every stream. Reasoning and tool calls pass through unchecked, in order.

`InvokeGuard` (invocation.guarded_invoke) and `ConverseGuard` (invocation.guarded_converse) add how
each API selects the text to check and where the guardrail's results go in the response.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any

from outcrop.guardrails.assess import Assessment, Segment
from outcrop.guardrails.invoke import StreamMode
from outcrop.guardrails.runtime import Guardrails, ResolvedGuardrail
from outcrop.guardrails.streaming import ChunkBuffer, redistribute
from outcrop.guardrails.words import count_words
from outcrop.types import Finish, GenerationEvent, StopReason, TokenEvent

Render = Callable[[str, Finish], Mapping[str, Any]]
"""The family's non-streaming body for a text and its finish (for the trace's modelOutput)."""


class Guard:
    """One call's guardrail state and its output handling (see the module docstring)."""

    def __init__(
        self,
        guardrails: Guardrails,
        guardrail: ResolvedGuardrail,
        *,
        streaming: bool,
        stream_mode: StreamMode = "SYNCHRONOUS",
    ) -> None:
        self.guardrails = guardrails
        self.guardrail = guardrail
        self.streaming = streaming
        self.stream_mode = stream_mode
        self.input_assessment: Assessment | None = None
        self.output_assessments: list[Assessment] = []
        self.original_output: list[str] = []
        self.original_finish: Finish | None = None
        self.intervened = False

    @property
    def input_blocked(self) -> bool:
        return self.input_assessment is not None and self.input_assessment.blocked

    @property
    def output_changed(self) -> bool:
        return any(a.intervened for a in self.output_assessments)

    async def assess_input(self, segments: Sequence[Segment]) -> Assessment:
        assessment = await self.guardrails.assess(self.guardrail, segments, "INPUT")
        self.input_assessment = assessment
        self.intervened = self.intervened or assessment.intervened
        return assessment

    def model_output(self, render: Render | None) -> list[str] | None:
        """The trace's `modelOutput`: the original answer when the guardrail changed it (as
        the family's JSON body when `render` is given, else the raw text)."""
        if not self.output_changed or not self.original_output:
            return None
        text = "".join(self.original_output)
        if render is not None and self.original_finish is not None:
            text = json.dumps(render(text, self.original_finish), ensure_ascii=False)
        return [text]

    def events(
        self,
        generate: Callable[[], AsyncGenerator[GenerationEvent, None]],
        input_tokens: Callable[[], int],
    ) -> AsyncGenerator[GenerationEvent, None]:
        """The events the dialect should see: the blocked answer when the input was blocked
        (the model is not called), else the engine's events with the output guarded."""
        if self.input_blocked:
            return self._blocked_input(input_tokens)
        if not self.streaming:
            return self._whole(generate())
        return self._chunked(generate(), input_tokens)

    async def _blocked_input(
        self, input_tokens: Callable[[], int]
    ) -> AsyncGenerator[GenerationEvent, None]:
        message = self.guardrail.definition.blocked_input_messaging
        yield TokenEvent(message, count_words(message))
        yield Finish(StopReason.END_TURN, input_tokens(), count_words(message))

    async def _whole(
        self, events: AsyncGenerator[GenerationEvent, None]
    ) -> AsyncGenerator[GenerationEvent, None]:
        pieces: list[str] = []
        others: list[GenerationEvent] = []  # reasoning and tool calls: passed on, not assessed
        tokens = 0
        async with aclosing(events) as run:
            async for event in run:
                if _is_text(event):
                    assert isinstance(event, TokenEvent)
                    pieces.append(event.text)
                    tokens += event.token_count
                    continue
                if not isinstance(event, Finish):
                    others.append(event)
                    continue
                self.original_output = ["".join(pieces)]
                self.original_finish = event
                assessment = await self._assess_output(pieces)
                if assessment.blocked:
                    # The whole answer is replaced, its reasoning and tool calls included.
                    yield TokenEvent(assessment.blocked_messaging, tokens)
                    yield dataclasses.replace(event, stop_reason=StopReason.END_TURN)
                    return
                for other in others:
                    yield other
                yield TokenEvent(assessment.output_text, tokens)
                yield event
                return

    async def _chunked(
        self, events: AsyncGenerator[GenerationEvent, None], input_tokens: Callable[[], int]
    ) -> AsyncGenerator[GenerationEvent, None]:
        sync = self.stream_mode == "SYNCHRONOUS"
        buffer = ChunkBuffer(self.guardrails.stream_chunk_chars)
        produced = 0
        async with aclosing(events) as run:
            async for event in run:
                if isinstance(event, Finish):
                    self.original_finish = event
                    closed = buffer.take() if buffer else None
                elif _is_text(event):
                    assert isinstance(event, TokenEvent)
                    produced += event.token_count
                    self.original_output.append(event.text)
                    closed = buffer.add(event.text, event.token_count)
                else:
                    # Reasoning and tool calls are not assessed; what came before them is
                    # checked first, so that the order of events is kept.
                    produced += event.token_count
                    closed = buffer.take() if buffer else None
                if closed is not None:
                    released = await self._release(closed, sync)
                    if released is None:
                        tokens = event.input_tokens if isinstance(event, Finish) else None
                        for blocked in self._blocked_output(
                            tokens if tokens is not None else input_tokens(), produced
                        ):
                            yield blocked
                        return
                    for released_event in released:
                        yield released_event
                if isinstance(event, Finish):
                    yield event
                    return
                if not sync or not _is_text(event):
                    yield event

    async def _release(
        self, chunk: tuple[list[str], list[int]], sync: bool
    ) -> list[TokenEvent] | None:
        """The events to send after assessing a chunk (None: blocked). Asynchronous mode sent
        the pieces already, so only a block changes anything there."""
        pieces, counts = chunk
        assessment = await self._assess_output(pieces)
        if assessment.blocked:
            return None
        if not sync:
            return []
        if assessment.masked:
            pieces = redistribute(
                pieces, [(m.start, m.end, m.placeholder) for m in assessment.masks]
            )
        return [TokenEvent(piece, count) for piece, count in zip(pieces, counts, strict=True)]

    def _blocked_output(self, input_tokens: int, produced: int) -> list[GenerationEvent]:
        message = self.guardrail.definition.blocked_outputs_messaging
        return [
            TokenEvent(message, 0),
            Finish(StopReason.END_TURN, input_tokens, produced),
        ]

    async def _assess_output(self, pieces: list[str]) -> Assessment:
        text = "".join(pieces)
        assessment = await self.guardrails.assess(self.guardrail, [Segment(text)], "OUTPUT")
        self.output_assessments.append(assessment)
        self.intervened = self.intervened or assessment.intervened
        return assessment


def _is_text(event: GenerationEvent) -> bool:
    return isinstance(event, TokenEvent) and event.kind == "text"
