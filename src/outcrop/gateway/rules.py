"""Test-control rules and their registry: which calls a rule applies to, and how often it fires.

Fault rules (gateway/faults.py) and scripted responses (gateway/scripted_responses.py) share
this: a rule matches calls by operation, model (glob over the base model ID or endpoint name),
principal (glob over the caller's ARN) and prompt (an RE2 regular expression, matched in
linear time, searched in the text of the request body), fires at most `times` times (None:
every match), each time with `probability`. Rules are tried in the order they were added; the
first that fires wins.

`RuleRegistry` keeps the rules in this process. The gateway (interceptors, admin API) uses its
async methods (`take`, `add_rule`, `describe_rules`, ...), which a shared registry
(shared/rules.py: the rules in Redis, for a fleet of replicas) implements over the network.
"""

from __future__ import annotations

import fnmatch
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

from outcrop.config.security import RuleMatchSettings, compile_prompt_pattern
from outcrop.gateway.call_facts import prompt_text


@dataclass(slots=True)
class Rule[S: RuleMatchSettings]:
    """A rule and what it has done so far."""

    id: str
    settings: S
    created: float = field(default_factory=time.time)
    matched: int = 0
    fired: int = 0
    _prompt: Any = None
    """The `prompt` pattern compiled with RE2 (linear-time matching)."""

    def __post_init__(self) -> None:
        if self.settings.prompt is not None:
            self._prompt = compile_prompt_pattern(self.settings.prompt)

    @property
    def exhausted(self) -> bool:
        times = self.settings.times
        return times is not None and self.fired >= times

    def matches(self, operation: str, model: str, principal: str, prompt: str | None) -> bool:
        s = self.settings
        if not (
            fnmatch.fnmatchcase(operation, s.operation)
            and fnmatch.fnmatchcase(model, s.model)
            and fnmatch.fnmatchcase(principal, s.principal)
        ):
            return False
        return self._prompt is None or (prompt is not None and bool(self._prompt.search(prompt)))

    def describe(self) -> dict[str, Any]:
        s = self.settings
        remaining = None if s.times is None else max(0, s.times - self.fired)
        return {
            **s.model_dump(exclude_none=True),
            "id": self.id,
            "matched": self.matched,
            "fired": self.fired,
            "remaining": remaining,
            "created": self.created,
        }


class RuleRegistry[S: RuleMatchSettings]:
    """The rules in force, shared by an interceptor, its admin API and the config file."""

    id_prefix = "rule"
    """Generated ids are `<id_prefix>-<n>`."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rules: dict[str, Rule[S]] = {}
        self._ids = itertools.count(1)
        self.rng = rng or random.Random()

    def check(self, settings: S) -> None:
        """Refuse (ValueError) settings that validate but cannot work; a hook for subclasses."""

    def add(self, settings: S) -> Rule[S]:
        self.check(settings)
        rule_id = settings.id or self._next_id()
        if rule_id in self._rules:
            raise ValueError(f"a rule with id {rule_id!r} exists already")
        rule = Rule(rule_id, settings)
        self._rules[rule_id] = rule
        return rule

    def _next_id(self) -> str:
        while True:
            candidate = f"{self.id_prefix}-{next(self._ids)}"
            if candidate not in self._rules:
                return candidate

    def rules(self) -> list[Rule[S]]:
        return list(self._rules.values())

    def __bool__(self) -> bool:
        """Whether any rule is in force (the fast path of every call checks this)."""
        return bool(self._rules)

    def get(self, rule_id: str) -> Rule[S] | None:
        return self._rules.get(rule_id)

    def remove(self, rule_id: str) -> bool:
        return self._rules.pop(rule_id, None) is not None

    def clear(self) -> int:
        count = len(self._rules)
        self._rules.clear()
        return count

    def pick(self, operation: str, model: str, principal: str, body: bytes) -> Rule[S] | None:
        """The first live rule that matches and wins its probability roll (then counted)."""
        prompt: str | None = None
        for rule in self._rules.values():
            if rule.exhausted:
                continue
            if rule.settings.prompt is not None and prompt is None:
                prompt = prompt_text(body)
            if not rule.matches(operation, model, principal, prompt):
                continue
            rule.matched += 1
            if rule.settings.probability < 1.0 and self.rng.random() >= rule.settings.probability:
                continue
            rule.fired += 1
            return rule
        return None

    # -- what the gateway calls (async, so that a shared registry can answer over the network) -

    async def take(self, operation: str, model: str, principal: str, body: bytes) -> Rule[S] | None:
        """`pick`: the first live rule that matches and fires, counted."""
        return self.pick(operation, model, principal, body)

    async def add_rule(self, settings: S) -> dict[str, Any]:
        """Add a rule (ValueError as `add`); its description."""
        return self.add(settings).describe()

    async def count_rules(self) -> int:
        return len(self._rules)

    async def describe_rules(self) -> list[dict[str, Any]]:
        return [r.describe() for r in self._rules.values()]

    async def describe_rule(self, rule_id: str) -> dict[str, Any] | None:
        rule = self._rules.get(rule_id)
        return None if rule is None else rule.describe()

    async def remove_rule(self, rule_id: str) -> bool:
        return self.remove(rule_id)

    async def clear_rules(self) -> int:
        return self.clear()
