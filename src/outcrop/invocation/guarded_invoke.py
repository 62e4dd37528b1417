"""A guardrail applied to one InvokeModel or InvokeModelWithResponseStream call.

`InvokeGuard` plugs into the invocation at four points, so that the operation itself only
passes things through it:

1. `check_input` assesses the prompt (the user turns, or only their tagged sections) before
   generation. Blocked: the model is never called and the answer is the guardrail's
   `blockedInputMessaging`, rendered by the model family's dialect like any answer. Masked: the
   model sees the masked prompt.
2. `events` (from `invocation.guard.Guard`) wraps the engine's events and checks the answer,
   whole or in chunks, synchronously or asynchronously (`amazon-bedrock-guardrailConfig`
   `streamProcessingMode`).
3. `stream_encoder` marks each streamed text object with `amazon-bedrock-guardrailAction`
   (INTERVENED once the guardrail has intervened, else NONE) and the final object with the
   action and, when tracing, `amazon-bedrock-trace`, as recorded Bedrock streams do.
4. `decorate_body` adds the same two members to a non-streaming body.

Bedrock's behaviour for Claude bodies here is inferred from recorded Titan and Nova traffic
(tests/fixtures/guardrail_recordings/traceloop__*guardrail*, traceloop__test_nova_*;
docs/recordings.md): the member names, where they go and the trace's shape are those; what the
blocked answer's stop reason is for Claude is unverified (Outcrop answers `end_turn`, as for any
complete answer).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from outcrop.dialects.base import StreamEncoder
from outcrop.guardrails.assess import Segment, apply_masks
from outcrop.guardrails.invoke import UNKNOWN_GUARDRAIL, InvokeGuardrailRequest, untag
from outcrop.guardrails.runtime import Guardrails, ResolvedGuardrail
from outcrop.guardrails.shapes import invoke_trace
from outcrop.invocation.guard import Guard, Render
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationRequest,
    ToolCallEvent,
    Usage,
)
from outcrop.wire.errors import ValidationException

ACTION_KEY = "amazon-bedrock-guardrailAction"
TRACE_KEY = "amazon-bedrock-trace"


class InvokeGuard(Guard):
    """The guardrail of one InvokeModel call (see the module docstring)."""

    def __init__(
        self,
        guardrails: Guardrails,
        guardrail: ResolvedGuardrail,
        options: InvokeGuardrailRequest,
        *,
        streaming: bool,
    ) -> None:
        super().__init__(
            guardrails, guardrail, streaming=streaming, stream_mode=options.stream_mode
        )
        self.options = options

    @classmethod
    def open(
        cls, guardrails: Guardrails, options: InvokeGuardrailRequest, *, streaming: bool
    ) -> InvokeGuard:
        """The guard for `options`; Bedrock's ValidationException for an unknown guardrail or
        version."""
        resolved = guardrails.resolve(options.identifier, options.version)
        if resolved is None:
            raise ValidationException(UNKNOWN_GUARDRAIL)
        return cls(guardrails, resolved, options, streaming=streaming)

    # -- 1. input ----------------------------------------------------------------------------

    async def check_input(self, request: GenerationRequest) -> GenerationRequest:
        """Assess the prompt; the request the model should see (tags removed, masks applied)."""
        messages = list(request.messages)
        user_turns = [i for i, m in enumerate(messages) if m.role == "user"]
        suffix = self.options.tag_suffix
        untagged = {i: untag(messages[i].text, suffix) for i in user_turns} if suffix else {}
        use_tags = any(t.sections for t in untagged.values())
        segments: list[Segment] = []
        origins: list[tuple[int, int]] = []  # per guarded segment: (message index, offset)
        for i in user_turns:
            if not use_tags:
                segments.append(Segment(messages[i].text, prompt_attack=False))
                origins.append((i, 0))
                continue
            tagged = untagged[i]
            text, position = tagged.text, 0
            for start, end in tagged.sections:
                if start > position:
                    segments.append(Segment(text[position:start], guarded=False))
                segments.append(Segment(text[start:end]))
                origins.append((i, start))
                position = end
            if position < len(text):
                segments.append(Segment(text[position:], guarded=False))
            messages[i] = dataclasses.replace(messages[i], text=text)
        assessment = await self.assess_input(segments)
        if assessment.masked:
            per_message: dict[int, list[tuple[int, int, str]]] = {}
            for mask in assessment.masks:
                index, offset = origins[mask.segment]
                per_message.setdefault(index, []).append(
                    (mask.start + offset, mask.end + offset, mask.placeholder)
                )
            for index, masks in per_message.items():
                messages[index] = dataclasses.replace(
                    messages[index], text=apply_masks(messages[index].text, sorted(masks))
                )
        return _with_messages(request, messages)

    # -- 2. output ---------------------------------------------------------------------------

    # -- 3. and 4. the guardrail's members in the response ------------------------------------

    @property
    def action(self) -> str:
        return "INTERVENED" if self.intervened else "NONE"

    def trace(self, render: Render | None) -> dict[str, Any] | None:
        if self.options.trace == "DISABLED":
            return None
        return invoke_trace(
            self.guardrail.applied,
            self.input_assessment,
            self.output_assessments,
            self.model_output(render),
            full=self.options.trace == "ENABLED_FULL",
        )

    def decorate_body(self, body: dict[str, Any], render: Render) -> dict[str, Any]:
        """The non-streaming body with the guardrail's action (and trace)."""
        out = dict(body)
        out[ACTION_KEY] = self.action
        trace = self.trace(render)
        if trace is not None:
            out[TRACE_KEY] = trace
        return out

    def stream_encoder(self, encoder: StreamEncoder) -> StreamEncoder:
        return _GuardedEncoder(encoder, self)


class _GuardedEncoder:
    """A family's stream encoder with the guardrail's members added to its objects."""

    def __init__(self, inner: StreamEncoder, guard: InvokeGuard) -> None:
        self.inner = inner
        self.guard = guard

    def start(self) -> list[dict[str, Any]]:
        return self.inner.start()

    def reasoning(self, piece: str) -> list[dict[str, Any]]:
        return self.inner.reasoning(piece)

    def tool_call(self, event: ToolCallEvent) -> list[dict[str, Any]]:
        return self.inner.tool_call(event)

    def text(self, piece: str) -> list[dict[str, Any]]:
        # The action goes on the objects that carry the text, not on block start/stop markers
        # (Claude: content_block_delta; Nova: contentBlockDelta, not its contentBlockStop).
        return [
            obj if _is_marker(obj) else {**obj, ACTION_KEY: self.guard.action}
            for obj in self.inner.text(piece)
        ]

    def finish(self, finish: Finish, usage: Usage) -> list[dict[str, Any]]:
        objects = self.inner.finish(finish, usage)
        if objects:
            last = {**objects[-1], ACTION_KEY: self.guard.action}
            if self.guard.input_blocked:
                # A stream whose prompt was blocked never reached a model: Bedrock's one chunk
                # carries no invocation metrics and no completion reason (recorded for Titan,
                # traceloop__test_guardrail_invoke_stream; assumed for the other families).
                for key in _NOT_ON_BLOCKED_INPUT:
                    last.pop(key, None)
            trace = self.guard.trace(None)
            if trace is not None:
                last[TRACE_KEY] = trace
            objects[-1] = last
        return objects


_NOT_ON_BLOCKED_INPUT = ("amazon-bedrock-invocationMetrics", "completionReason")
_MARKER_TYPES = frozenset({"content_block_start", "content_block_stop", "message_start"})
_MARKER_KEYS = frozenset({"contentBlockStart", "contentBlockStop", "messageStart"})


def _is_marker(obj: dict[str, Any]) -> bool:
    return obj.get("type") in _MARKER_TYPES or (len(obj) == 1 and set(obj) <= _MARKER_KEYS)


def _with_messages(request: GenerationRequest, messages: list[ChatMessage]) -> GenerationRequest:
    if tuple(messages) == request.messages:
        return request
    raw = request.raw_prompt
    if raw is not None:
        users = [m for m in messages if m.role == "user"]
        raw = users[-1].text if users else raw
    return dataclasses.replace(request, messages=tuple(messages), raw_prompt=raw)
