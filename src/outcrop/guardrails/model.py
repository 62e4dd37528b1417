"""A guardrail's definition: what each policy checks, in which direction, and what it does.

A definition is read from the body of a CreateGuardrail (or UpdateGuardrail) request, the shape
AWS documents (`topicPolicyConfig`, `contentPolicyConfig`, `wordPolicyConfig`,
`sensitiveInformationPolicyConfig`, `blockedInputMessaging`, ...), which is also what the
configuration file and the state file hold. `Definition.parse` checks what the service model
cannot (regexes that compile, filter strengths Bedrock refuses) and resolves each policy's
per-direction behaviour: `inputEnabled`/`outputEnabled` (default true), `inputAction`/
`outputAction` (default BLOCK, or the PII/regex entry's `action`), and for content filters the
strength (NONE turns the filter off in that direction). `describe` writes a definition back the
way GetGuardrail reports it (`topicPolicy.topics`, `contentPolicy.filters`, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from outcrop.wire.errors import ValidationException

Direction = Literal["INPUT", "OUTPUT"]
PolicyAction = Literal["BLOCK", "ANONYMIZE", "NONE"]
Strength = Literal["NONE", "LOW", "MEDIUM", "HIGH"]

_ACTIONS: dict[str, PolicyAction] = {"BLOCK": "BLOCK", "ANONYMIZE": "ANONYMIZE", "NONE": "NONE"}

# Wording unverified: Bedrock refuses a PROMPT_ATTACK output strength other than NONE (prompt
# attacks are a property of prompts), with a ValidationException.
PROMPT_ATTACK_OUTPUT = "The outputStrength for PROMPT_ATTACK filter must be NONE."


@dataclass(frozen=True, slots=True)
class Switch:
    """What a policy entry does on input and on output; None: not evaluated there."""

    input: PolicyAction | None
    output: PolicyAction | None

    def on(self, direction: Direction) -> PolicyAction | None:
        return self.input if direction == "INPUT" else self.output


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    definition: str
    examples: tuple[str, ...]
    switch: Switch


@dataclass(frozen=True, slots=True)
class ContentFilter:
    type: str
    input_strength: Strength
    output_strength: Strength
    switch: Switch

    def strength(self, direction: Direction) -> Strength:
        return self.input_strength if direction == "INPUT" else self.output_strength


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    switch: Switch


@dataclass(frozen=True, slots=True)
class ManagedWordList:
    type: str
    switch: Switch


@dataclass(frozen=True, slots=True)
class PiiEntity:
    type: str
    switch: Switch


@dataclass(frozen=True, slots=True)
class RegexFilter:
    name: str
    pattern: str
    compiled: re.Pattern[str]
    switch: Switch


@dataclass(frozen=True, slots=True)
class Definition:
    """Everything a guardrail version checks; built once per version and reused."""

    name: str
    blocked_input_messaging: str
    blocked_outputs_messaging: str
    topics: tuple[Topic, ...] = ()
    content_filters: tuple[ContentFilter, ...] = ()
    words: tuple[Word, ...] = ()
    managed_word_lists: tuple[ManagedWordList, ...] = ()
    pii_entities: tuple[PiiEntity, ...] = ()
    regexes: tuple[RegexFilter, ...] = ()

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> Definition:
        """A definition from a CreateGuardrail-shaped mapping (already checked against the
        service model); raises ValidationException for what Bedrock refuses beyond it."""
        topics = tuple(
            Topic(
                str(t["name"]),
                str(t["definition"]),
                tuple(str(e) for e in t.get("examples") or ()),
                _switch(t, default="BLOCK"),
            )
            for t in _items(spec, "topicPolicyConfig", "topicsConfig")
        )
        filters = []
        for f in _items(spec, "contentPolicyConfig", "filtersConfig"):
            kind = str(f["type"])
            strengths: tuple[Strength, Strength] = (f["inputStrength"], f["outputStrength"])
            if kind == "PROMPT_ATTACK" and strengths[1] != "NONE":
                raise ValidationException(PROMPT_ATTACK_OUTPUT)
            switch = _switch(f, default="BLOCK")
            switch = Switch(
                switch.input if strengths[0] != "NONE" else None,
                switch.output if strengths[1] != "NONE" else None,
            )
            filters.append(ContentFilter(kind, strengths[0], strengths[1], switch))
        words = tuple(
            Word(str(w["text"]), _switch(w, default="BLOCK"))
            for w in _items(spec, "wordPolicyConfig", "wordsConfig")
        )
        managed = tuple(
            ManagedWordList(str(m["type"]), _switch(m, default="BLOCK"))
            for m in _items(spec, "wordPolicyConfig", "managedWordListsConfig")
        )
        pii = tuple(
            PiiEntity(str(p["type"]), _switch(p, default=p["action"]))
            for p in _items(spec, "sensitiveInformationPolicyConfig", "piiEntitiesConfig")
        )
        regexes = []
        for r in _items(spec, "sensitiveInformationPolicyConfig", "regexesConfig"):
            try:
                compiled = re.compile(str(r["pattern"]))
            except re.error as exc:
                # Wording unverified: AWS validates the pattern when the guardrail is saved.
                raise ValidationException(
                    f"The regex pattern for {r['name']} is invalid: {exc}."
                ) from None
            regexes.append(
                RegexFilter(
                    str(r["name"]), str(r["pattern"]), compiled, _switch(r, default=r["action"])
                )
            )
        return cls(
            name=str(spec["name"]),
            blocked_input_messaging=str(spec["blockedInputMessaging"]),
            blocked_outputs_messaging=str(spec["blockedOutputsMessaging"]),
            topics=topics,
            content_filters=tuple(filters),
            words=words,
            managed_word_lists=managed,
            pii_entities=pii,
            regexes=tuple(regexes),
        )

    def blocked_messaging(self, direction: Direction) -> str:
        if direction == "INPUT":
            return self.blocked_input_messaging
        return self.blocked_outputs_messaging


def _items(spec: Mapping[str, Any], policy: str, member: str) -> list[Mapping[str, Any]]:
    config = spec.get(policy) or {}
    return list(config.get(member) or ())


def _switch(entry: Mapping[str, Any], default: str) -> Switch:
    def side(action_key: str, enabled_key: str) -> PolicyAction | None:
        if entry.get(enabled_key) is False:
            return None
        action = str(entry.get(action_key) or default)
        return _ACTIONS[action]

    return Switch(side("inputAction", "inputEnabled"), side("outputAction", "outputEnabled"))


# -- GetGuardrail's view of a definition --------------------------------------------------------

_DIRECTIONAL = ("inputAction", "outputAction", "inputEnabled", "outputEnabled")


def describe(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The policy members of GetGuardrail for a CreateGuardrail-shaped `spec`.

    The `...Config` members become the reported ones (`topicsConfig` → `topics`, ...), with the
    per-direction fields filled in as they apply (AWS reports them; unverified whether it also
    does for guardrails created without them)."""
    out: dict[str, Any] = {}
    topics = _items(spec, "topicPolicyConfig", "topicsConfig")
    if topics:
        out["topicPolicy"] = {"topics": [_filled(t, "BLOCK") for t in topics]}
        tier = (spec.get("topicPolicyConfig") or {}).get("tierConfig")
        if tier:
            out["topicPolicy"]["tier"] = dict(tier)
    filters = _items(spec, "contentPolicyConfig", "filtersConfig")
    if filters:
        out["contentPolicy"] = {"filters": [_filled(f, "BLOCK") for f in filters]}
        tier = (spec.get("contentPolicyConfig") or {}).get("tierConfig")
        if tier:
            out["contentPolicy"]["tier"] = dict(tier)
    words = _items(spec, "wordPolicyConfig", "wordsConfig")
    managed = _items(spec, "wordPolicyConfig", "managedWordListsConfig")
    if words or managed:
        out["wordPolicy"] = {}
        if words:
            out["wordPolicy"]["words"] = [_filled(w, "BLOCK") for w in words]
        if managed:
            out["wordPolicy"]["managedWordLists"] = [_filled(m, "BLOCK") for m in managed]
    pii = _items(spec, "sensitiveInformationPolicyConfig", "piiEntitiesConfig")
    regexes = _items(spec, "sensitiveInformationPolicyConfig", "regexesConfig")
    if pii or regexes:
        out["sensitiveInformationPolicy"] = {}
        if pii:
            out["sensitiveInformationPolicy"]["piiEntities"] = [
                _filled(p, str(p["action"])) for p in pii
            ]
        if regexes:
            out["sensitiveInformationPolicy"]["regexes"] = [
                _filled(r, str(r["action"])) for r in regexes
            ]
    grounding = _items(spec, "contextualGroundingPolicyConfig", "filtersConfig")
    if grounding:
        out["contextualGroundingPolicy"] = {"filters": [dict(g) for g in grounding]}
    return out


def _filled(entry: Mapping[str, Any], default_action: str) -> dict[str, Any]:
    out = dict(entry)
    out.setdefault("inputAction", default_action)
    out.setdefault("outputAction", default_action)
    out.setdefault("inputEnabled", True)
    out.setdefault("outputEnabled", True)
    if "type" not in out and "definition" in out:
        out["type"] = "DENY"
    return out
