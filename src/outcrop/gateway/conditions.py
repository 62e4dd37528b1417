"""IAM `Condition` blocks in identity policies: parsing and evaluation against a request's keys.

The operators are IAM's string, boolean and null operators (`StringEquals`, `StringNotEquals`,
`StringEqualsIgnoreCase`, `StringNotEqualsIgnoreCase`, `StringLike`, `StringNotLike`, `Bool`,
`Null`, each but `Null` also with the `IfExists` suffix). The keys are the ones a Bedrock or
SageMaker invocation has here:

- `bedrock:GuardrailIdentifier`: the guardrail an invocation applies, as its ARN followed by
  `:<version>` for a numbered version, the bare ARN for DRAFT (AWS's "enforce a specific
  guardrail" examples; the DRAFT form is unverified). Absent when no guardrail is applied.
- `aws:PrincipalArn`, `aws:RequestedRegion`, `aws:SecureTransport` (`true` on the TLS listener).

IAM's rules for a key the request does not have: a positive operator is false, a negated one
(`...Not...`) is true, `...IfExists` is true, and `Null` tests exactly that. Several operators
in a block, and several keys under one operator, must all hold; several values for one key
match if any does. Other operators and keys are refused when the policy loads, so a condition
never silently grants or denies more than it says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

KEYS = {
    "bedrock:guardrailidentifier": "bedrock:GuardrailIdentifier",
    "aws:principalarn": "aws:PrincipalArn",
    "aws:requestedregion": "aws:RequestedRegion",
    "aws:securetransport": "aws:SecureTransport",
}
"""Supported condition keys, by their lower-case form (IAM matches key names without case)."""

Context = Mapping[str, str | None]
"""A request's condition keys (lower-case names) and values; None where the key is absent."""


def iam_like(pattern: str, value: str) -> bool:
    """IAM wildcards, as Resource and StringLike match: `*` any run (including `:` and `/`),
    `?` one character, the rest literally."""
    if pattern == "*":
        return True
    if "*" not in pattern and "?" not in pattern:
        return pattern == value
    escaped = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return _compiled(escaped).fullmatch(value) is not None


@cache
def _compiled(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.DOTALL)


_MATCHERS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (lambda p, v: p == v, False),
    "StringNotEquals": (lambda p, v: p == v, True),
    "StringEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), True),
    "StringLike": (iam_like, False),
    "StringNotLike": (iam_like, True),
    "Bool": (lambda p, v: p.lower() == v.lower(), False),
}
"""Operator → (does one policy value match the request's value, is the operator negated)."""


class ConditionError(ValueError):
    """A Condition block this policy language does not take; the message names the part."""


@dataclass(frozen=True, slots=True)
class Condition:
    operator: str
    key: str
    """Lower-case key name."""
    values: tuple[str, ...]
    if_exists: bool = False

    def holds(self, context: Context) -> bool:
        value = context.get(self.key)
        if self.operator == "Null":
            return (value is None) == (self.values[0].lower() == "true")
        matcher, negated = _MATCHERS[self.operator]
        if value is None:
            return self.if_exists or negated
        hit = any(matcher(pattern, value) for pattern in self.values)
        return hit != negated


def parse_conditions(where: str, raw: object) -> tuple[Condition, ...]:
    """A statement's `Condition` object as conditions, or ConditionError naming the part."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConditionError(f"{where}: an object of operators")
    parsed: list[Condition] = []
    for operator, block in raw.items():
        base = operator.removesuffix("IfExists")
        if base not in _MATCHERS and operator != "Null":
            raise ConditionError(f"{where}.{operator}: operator not supported")
        if not isinstance(block, Mapping) or not block:
            raise ConditionError(f"{where}.{operator}: an object of condition keys")
        for key, value in block.items():
            parsed.append(_condition(f"{where}.{operator}", base, operator != base, key, value))
    return tuple(parsed)


def _condition(where: str, operator: str, if_exists: bool, key: Any, value: Any) -> Condition:
    if not isinstance(key, str) or key.lower() not in KEYS:
        supported = ", ".join(sorted(KEYS.values()))
        raise ConditionError(f"{where}: condition key {key!r} not supported ({supported})")
    values = [value] if isinstance(value, str | bool) else value
    if not isinstance(values, list) or not values:
        raise ConditionError(f"{where}.{key}: a string or a non-empty list of strings")
    texts = tuple(str(v).lower() if isinstance(v, bool) else v for v in values)
    if not all(isinstance(v, str) for v in texts):
        raise ConditionError(f"{where}.{key}: a string or a non-empty list of strings")
    if operator in ("Null", "Bool") and not all(v.lower() in ("true", "false") for v in texts):
        raise ConditionError(f"{where}.{key}: true or false")
    if operator == "Null" and len(texts) != 1:
        raise ConditionError(f"{where}.{key}: Null takes one value")
    return Condition(operator, key.lower(), texts, if_exists)


def guardrail_key(arn: str, version: str | None) -> str:
    """The `bedrock:GuardrailIdentifier` value of a request applying guardrail `arn`."""
    if version is None or not version.isdigit():
        return arn
    return f"{arn}:{version}"


def request_context(
    *, principal: str, region: str, secure: bool, guardrail: str | None
) -> dict[str, str | None]:
    """The condition keys of one request (`guardrail` as `guardrail_key` gives it)."""
    return {
        "bedrock:guardrailidentifier": guardrail,
        "aws:principalarn": principal,
        "aws:requestedregion": region,
        "aws:securetransport": "true" if secure else "false",
    }
