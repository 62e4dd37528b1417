"""A guardrail applied to one Converse or ConverseStream call.

Converse names its guardrail in the body: `guardrailConfig` with `guardrailIdentifier`,
`guardrailVersion`, `trace` (enabled, disabled, enabled_full) and, for ConverseStream,
`streamProcessingMode` (sync, async). What is checked:

- with `guardContent` blocks anywhere (messages or system), only those: a block qualified only
  as `grounding_source` or `query` is context for contextual grounding (counted in the
  coverage, not checked); `guard_content` or no qualifier is checked, prompt attacks included;
- otherwise the text blocks of the user turns (recorded traffic shows system prompts are not
  checked), without prompt-attack filters, which need guard content as they need input tags on
  InvokeModel.

A blocked prompt is never sent to the model; a masked one is sent masked (`check_input`
returns the body the Converse dialect should parse). The answer is checked by
`invocation.guard.Guard.events`. When the guardrail intervened, Converse reports
`stopReason: guardrail_intervened` (recorded for masked answers too) and, when tracing, `trace`
(`guardrails.shapes.converse_trace`: `inputAssessment`, `outputAssessments`, `modelOutput`
when the answer was changed, `actionReason`).

`services.converse` uses `from_body`, `check_input`, `events`, `stop_reason` and `trace`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from outcrop.guardrails.assess import Segment, apply_masks, guarded_by
from outcrop.guardrails.invoke import INCORRECT_FORMAT, UNKNOWN_GUARDRAIL
from outcrop.guardrails.runtime import Guardrails, ResolvedGuardrail
from outcrop.guardrails.shapes import converse_trace
from outcrop.invocation.guard import Guard, Render
from outcrop.wire.errors import ValidationException

GUARDRAIL_INTERVENED = "guardrail_intervened"

ConverseTrace = Literal["enabled", "disabled", "enabled_full"]


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a checked text lives in the body: a path of keys and indexes to its string."""

    path: tuple[str | int, ...]


class ConverseGuard(Guard):
    """The guardrail of one Converse call (see the module docstring)."""

    def __init__(
        self,
        guardrails: Guardrails,
        guardrail: ResolvedGuardrail,
        trace: ConverseTrace,
        *,
        streaming: bool,
        sync: bool = True,
    ) -> None:
        super().__init__(
            guardrails,
            guardrail,
            streaming=streaming,
            stream_mode="SYNCHRONOUS" if sync else "ASYNCHRONOUS",
        )
        self.trace_mode = trace

    @classmethod
    def from_body(
        cls, guardrails: Guardrails, body: Mapping[str, Any], *, streaming: bool
    ) -> ConverseGuard | None:
        """The guard `guardrailConfig` asks for, or None; Bedrock's ValidationException for an
        incomplete config or an unknown guardrail or version (members already checked against
        the service model)."""
        config = body.get("guardrailConfig")
        if config is None:
            return None
        identifier = config.get("guardrailIdentifier") or None
        version = config.get("guardrailVersion") or None
        if identifier is None or version is None:
            raise ValidationException(INCORRECT_FORMAT)
        resolved = guardrails.resolve(str(identifier), str(version))
        if resolved is None:
            raise ValidationException(UNKNOWN_GUARDRAIL)
        return cls(
            guardrails,
            resolved,
            config.get("trace") or "disabled",
            streaming=streaming,
            sync=config.get("streamProcessingMode", "sync") == "sync",
        )

    async def check_input(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Assess the conversation; the body the model should see (masked where masked)."""
        segments, places = converse_segments(body)
        assessment = await self.assess_input(segments)
        out = copy.deepcopy(dict(body))
        if assessment.masked:
            per_place: dict[int, list[tuple[int, int, str]]] = {}
            for mask in assessment.masks:
                per_place.setdefault(mask.segment, []).append(
                    (mask.start, mask.end, mask.placeholder)
                )
            for index, masks in per_place.items():
                _replace(out, places[index].path, lambda text, m=masks: apply_masks(text, m))
        return out

    @property
    def stop_reason(self) -> str | None:
        """`guardrail_intervened` once the guardrail blocked or masked anything."""
        return GUARDRAIL_INTERVENED if self.intervened else None

    def trace(self, render: Render | None = None) -> dict[str, Any] | None:
        """Converse's `trace` member (None when tracing is disabled). `render` gives the
        model's native body for `modelOutput` (Converse; ConverseStream reports raw text)."""
        if self.trace_mode == "disabled":
            return None
        return converse_trace(
            self.guardrail.applied,
            self.input_assessment,
            self.output_assessments,
            self.model_output(render),
            full=self.trace_mode == "enabled_full",
        )


def converse_segments(body: Mapping[str, Any]) -> tuple[list[Segment], list[_Place]]:
    """The segments a Converse body offers the guardrail, and where each checked one lives."""
    system = list(body.get("system") or ())
    messages = list(body.get("messages") or ())
    guard_blocks: list[tuple[Mapping[str, Any], tuple[str | int, ...]]] = []
    for i, block in enumerate(system):
        if "guardContent" in block:
            guard_blocks.append((block["guardContent"], ("system", i, "guardContent")))
    for m, message in enumerate(messages):
        for b, block in enumerate(message.get("content") or ()):
            if "guardContent" in block:
                guard_blocks.append(
                    (block["guardContent"], ("messages", m, "content", b, "guardContent"))
                )
    segments: list[Segment] = []
    places: list[_Place] = []
    if guard_blocks:
        for guard, path in guard_blocks:
            if "text" not in guard:
                continue  # images are not assessed
            text = guard["text"]
            qualifiers = set(text.get("qualifiers") or ())
            guarded = guarded_by(qualifiers)
            segments.append(Segment(str(text["text"]), guarded=guarded))
            if guarded:
                places.append(_Place((*path, "text", "text")))
        return segments, places
    for m, message in enumerate(messages):
        if message.get("role") != "user":
            continue
        for b, block in enumerate(message.get("content") or ()):
            if "text" in block:
                segments.append(Segment(str(block["text"]), prompt_attack=False))
                places.append(_Place(("messages", m, "content", b, "text")))
    return segments, places


def _replace(root: Any, path: tuple[str | int, ...], change: Any) -> None:
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = change(node[path[-1]])
