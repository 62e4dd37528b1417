"""One guardrail assessment: every policy run over some text, and what the guardrail does.

`assess` takes a guardrail `Definition`, the text to check as `Segment`s (one per content block
or tagged section; segments that are only context for grounding are counted in the coverage but
not checked), the direction, and the denied-topic scores already computed for the guarded text
(`topics.TopicClassifier`), and returns an `Assessment`: every finding (including, for the
ENABLED_FULL trace and outputScope FULL, the policies that found nothing), whether the guardrail
blocks, the segments' text after masking, coverage, usage units and latency.

The decision follows Bedrock: a finding whose action is BLOCK blocks the whole text (it is
replaced by the blocked messaging); otherwise ANONYMIZE findings are masked in place as
`{ENTITY_TYPE}` (PII) or `{regex name}` (custom regexes); findings with action NONE are reported
but change nothing. Either intervention makes the action `GUARDRAIL_INTERVENED`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from outcrop.guardrails import content, pii, words
from outcrop.guardrails.model import Definition, Direction, PolicyAction, Strength, Switch
from outcrop.guardrails.topics import SIMILARITY_THRESHOLD

Policy = Literal["topic", "content", "word", "managed_word", "pii", "regex"]
TraceAction = Literal["BLOCKED", "ANONYMIZED", "NONE"]

TEXT_UNIT = 1000
"""Characters per guardrail text unit (AWS pricing's unit, reported in `usage`)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of text the guardrail sees.

    `guarded` False: counted in the coverage total but not checked (e.g. `grounding_source` and
    `query` content, or untagged text when tags select what to check). `prompt_attack`: whether
    PROMPT_ATTACK filters apply (they need input tags or guard content on model invocations).
    """

    text: str
    guarded: bool = True
    prompt_attack: bool = True


@dataclass(frozen=True, slots=True)
class Finding:
    """One policy entry's result, in the terms of the trace."""

    policy: Policy
    name: str
    """Topic name, content category, configured word, managed list type, PII type, regex name."""
    action: TraceAction
    detected: bool
    match: str = ""
    confidence: Strength = "NONE"
    filter_strength: Strength = "NONE"
    regex: str = ""


@dataclass(frozen=True, slots=True)
class Mask:
    """One masked span: segment `segment`'s text[start:end] became `placeholder`."""

    segment: int
    start: int
    end: int
    placeholder: str


@dataclass(frozen=True, slots=True)
class Usage:
    topic: int = 0
    content: int = 0
    word: int = 0
    sensitive: int = 0
    sensitive_free: int = 0


@dataclass(frozen=True, slots=True)
class Assessment:
    direction: Direction
    findings: tuple[Finding, ...]
    blocked: bool
    masked: bool
    texts: tuple[str, ...]
    """The guarded segments' text after masking (unchanged when nothing is masked)."""
    blocked_messaging: str
    guarded_chars: int
    total_chars: int
    usage: Usage = field(default_factory=Usage)
    latency_ms: int = 0
    masks: tuple[Mask, ...] = ()

    @property
    def intervened(self) -> bool:
        return self.blocked or self.masked

    @property
    def action(self) -> Literal["GUARDRAIL_INTERVENED", "NONE"]:
        return "GUARDRAIL_INTERVENED" if self.intervened else "NONE"

    @property
    def reason(self) -> str:
        """Bedrock's `actionReason` for this assessment."""
        if self.blocked:
            return "Guardrail blocked."
        if self.masked:
            return "Guardrail masked."
        return "No action."

    @property
    def output_text(self) -> str:
        """What replaces the assessed text: the blocked messaging, or the (masked) text."""
        if self.blocked:
            return self.blocked_messaging
        return "".join(self.texts)

    def with_latency(self, ms: int) -> Assessment:
        return dataclasses.replace(self, latency_ms=ms)


_TRACE_ACTION: dict[str, TraceAction] = {"BLOCK": "BLOCKED", "ANONYMIZE": "ANONYMIZED"}


def _acted(action: PolicyAction) -> TraceAction:
    return _TRACE_ACTION.get(action, "NONE")


def assess(
    definition: Definition,
    segments: Sequence[Segment],
    direction: Direction,
    topic_scores: Sequence[float] = (),
) -> Assessment:
    """Run every policy of `definition` enabled for `direction` over the guarded segments.

    `topic_scores` gives, per topic of the definition, its score over the guarded text (missing
    scores count as 0)."""
    guarded = [s for s in segments if s.guarded]
    joined = "\n".join(s.text for s in guarded)
    attackable = "\n".join(s.text for s in guarded if s.prompt_attack)
    findings: list[Finding] = []

    for i, topic in enumerate(definition.topics):
        action = topic.switch.on(direction)
        if action is None:
            continue
        hit = i < len(topic_scores) and topic_scores[i] >= SIMILARITY_THRESHOLD
        findings.append(Finding("topic", topic.name, _acted(action) if hit else "NONE", hit))

    for f in definition.content_filters:
        action = f.switch.on(direction)
        if action is None:
            continue
        if f.type == "PROMPT_ATTACK" and not any(s.prompt_attack for s in guarded):
            continue  # nothing eligible: prompt-attack filters need tagged input
        strength = f.strength(direction)
        text = attackable if f.type == "PROMPT_ATTACK" else joined
        scored = content.score(f.type, text)
        hit = content.blocks(strength, scored.confidence)
        findings.append(
            Finding(
                "content",
                f.type,
                _acted(action) if hit else "NONE",
                hit,
                confidence=scored.confidence,
                filter_strength=strength,
            )
        )

    enabled_words = [w for w in definition.words if w.switch.on(direction) is not None]
    for index, hit_word in words.find_words(joined, [w.text for w in enabled_words]):
        action = enabled_words[index].switch.on(direction) or "NONE"
        findings.append(Finding("word", hit_word.match, _acted(action), True, match=hit_word.match))
    for managed in definition.managed_word_lists:
        managed_action = managed.switch.on(direction)
        if managed_action is None:
            continue
        for found in words.find_profanity(joined):
            findings.append(
                Finding(
                    "managed_word", managed.type, _acted(managed_action), True, match=found.match
                )
            )

    texts: list[str] = []
    masks: list[Mask] = []
    for index, segment in enumerate(guarded):
        segment_findings, segment_masks = _sensitive(definition, segment.text, direction)
        findings.extend(segment_findings)
        masks.extend(Mask(index, start, end, p) for start, end, p in segment_masks)
        texts.append(apply_masks(segment.text, segment_masks))
    for entity in definition.pii_entities:
        if entity.switch.on(direction) is not None and not any(
            f.policy == "pii" and f.name == entity.type for f in findings
        ):
            findings.append(Finding("pii", entity.type, "NONE", False))

    blocked = any(f.action == "BLOCKED" for f in findings)
    return Assessment(
        direction=direction,
        findings=tuple(findings),
        blocked=blocked,
        masked=bool(masks) and not blocked,
        texts=tuple(texts),
        blocked_messaging=definition.blocked_messaging(direction),
        guarded_chars=sum(len(s.text) for s in guarded),
        total_chars=sum(len(s.text) for s in segments),
        usage=_usage(definition, direction, sum(len(s.text) for s in guarded)),
        masks=tuple(masks),
    )


def _sensitive(
    definition: Definition, text: str, direction: Direction
) -> tuple[list[Finding], list[tuple[int, int, str]]]:
    """PII and regex findings in `text`, and the spans ANONYMIZE masks (with placeholders)."""
    candidates: list[tuple[int, int, Finding, str]] = []
    for entity in definition.pii_entities:
        action = entity.switch.on(direction)
        if action is None:
            continue
        for m in pii.detect(entity.type, text):
            finding = Finding("pii", entity.type, _acted(action), True, match=m.text)
            candidates.append((m.start, m.end, finding, "{" + entity.type + "}"))
    for regex in definition.regexes:
        action = regex.switch.on(direction)
        if action is None:
            continue
        for found in regex.compiled.finditer(text):
            if found.end() == found.start():
                continue
            finding = Finding(
                "regex", regex.name, _acted(action), True, match=found.group(), regex=regex.pattern
            )
            candidates.append((found.start(), found.end(), finding, "{" + regex.name + "}"))
    kept: list[tuple[int, int, Finding, str]] = []
    for candidate in sorted(candidates, key=lambda c: (c[0], -(c[1] - c[0]))):
        if kept and candidate[0] < kept[-1][1]:
            continue
        kept.append(candidate)
    masks = [(start, end, p) for start, end, f, p in kept if f.action == "ANONYMIZED"]
    return [k[2] for k in kept], masks


def apply_masks(text: str, masks: Sequence[tuple[int, int, str]]) -> str:
    """`text` with each (start, end, placeholder) span replaced (spans ordered, disjoint)."""
    out = []
    position = 0
    for start, end, placeholder in masks:
        out.append(text[position:start])
        out.append(placeholder)
        position = end
    out.append(text[position:])
    return "".join(out)


class _Switched(Protocol):
    @property
    def switch(self) -> Switch: ...


UNGUARDED_QUALIFIERS = frozenset({"grounding_source", "query"})
"""Qualifiers of context that is counted in the coverage but not checked."""


def guarded_by(qualifiers: set[str]) -> bool:
    """Whether a block with these qualifiers is checked (none, or any but context ones)."""
    return not qualifiers or not qualifiers <= UNGUARDED_QUALIFIERS


def text_units(chars: int) -> int:
    """Text units `chars` characters cost (at least one)."""
    return max(1, math.ceil(chars / TEXT_UNIT))


def _usage(definition: Definition, direction: Direction, chars: int) -> Usage:
    units = text_units(chars)

    def on(entries: Sequence[_Switched]) -> int:
        return units if any(e.switch.on(direction) is not None for e in entries) else 0

    return Usage(
        topic=on(definition.topics),
        content=on(definition.content_filters),
        word=on((*definition.words, *definition.managed_word_lists)),
        sensitive=on(definition.pii_entities),
        sensitive_free=on(definition.regexes),
    )
