"""A small JSON-body checker that reports violations the way Bedrock does.

Bedrock validates InvokeModel bodies against per-model JSON schemas with the everit library and
answers `Malformed input request: <violations>, please reformat your input and try again.`, each
violation prefixed by a JSON pointer (`#: required key [x] not found`, `#: extraneous key [x] is
not permitted`, `#/temperature: expected type: Number, found: String`), as captured for Claude,
Cohere and Nova (`malformed`). Amazon Titan's captured messages are everit's
`getErrorMessage()` instead: one violation without its pointer (`extraneous key
[textGenerationConfig] is not permitted`, `expected minLength: 1, actual: 0`), several as
`N schema violations found` (`titan_malformed`). The required/extraneous/minLength forms are
verbatim from captured errors; the type, range and item-count forms follow everit's standard
messages and are unverified against Bedrock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from outcrop.wire.errors import ValidationException

_POINTER = re.compile(r"^#[^:]*: ")

_TYPE_NAMES = {
    "string": "String",
    "integer": "Integer",
    "number": "Number",
    "boolean": "Boolean",
    "array": "JSONArray",
    "object": "JSONObject",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One key of a JSON object: its type and optional bounds."""

    type: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    min_items: int | None = None
    enum: tuple[str, ...] | None = None
    min_length: int | None = None
    max_items: int | None = None


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "BigDecimal"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "JSONArray"
    if isinstance(value, dict):
        return "JSONObject"
    return "Null"


def _is(value: Any, kind: str) -> bool:
    match kind:
        case "string":
            return isinstance(value, str)
        case "integer":
            return (isinstance(value, int) and not isinstance(value, bool)) or (
                isinstance(value, float) and value.is_integer()
            )
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "array":
            return isinstance(value, list)
        case "object":
            return isinstance(value, dict)
        case "any":
            return True
    raise ValueError(kind)


def check_object(obj: Any, fields: Mapping[str, Field], pointer: str = "#") -> list[str]:
    """Violations of `obj` against `fields` (required, extraneous, type, range, enum)."""
    if not isinstance(obj, Mapping):
        return [f"{pointer}: expected type: JSONObject, found: {type_name(obj)}"]
    problems: list[str] = []
    for key, spec in fields.items():
        if spec.required and key not in obj:
            problems.append(f"{pointer}: required key [{key}] not found")
    for key, value in obj.items():
        spec_or_none = fields.get(key)
        if spec_or_none is None:
            problems.append(f"{pointer}: extraneous key [{key}] is not permitted")
            continue
        problems.extend(check_value(value, spec_or_none, f"{pointer}/{key}"))
    return problems


def check_value(value: Any, spec: Field, pointer: str) -> list[str]:
    if not _is(value, spec.type):
        return [f"{pointer}: expected type: {_TYPE_NAMES[spec.type]}, found: {type_name(value)}"]
    problems: list[str] = []
    if spec.minimum is not None and value < spec.minimum:
        problems.append(f"{pointer}: {_num(value)} is not greater or equal to {_num(spec.minimum)}")
    if spec.maximum is not None and value > spec.maximum:
        problems.append(f"{pointer}: {_num(value)} is not less or equal to {_num(spec.maximum)}")
    if spec.min_items is not None and len(value) < spec.min_items:
        problems.append(
            f"{pointer}: expected minimum item count: {spec.min_items}, found: {len(value)}"
        )
    if spec.max_items is not None and len(value) > spec.max_items:
        problems.append(
            f"{pointer}: expected maximum item count: {spec.max_items}, found: {len(value)}"
        )
    if spec.min_length is not None and len(value) < spec.min_length:
        problems.append(f"{pointer}: expected minLength: {spec.min_length}, actual: {len(value)}")
    if spec.enum is not None and value not in spec.enum:
        problems.append(f"{pointer}: {value} is not a valid enum value")
    return problems


def malformed(problems: list[str], prefix: str = "") -> ValidationException:
    """The ValidationException Bedrock sends for schema violations."""
    return ValidationException(
        f"Malformed input request: {prefix}{''.join(problems)}, please reformat your input and "
        "try again."
    )


def titan_malformed(problems: list[str]) -> ValidationException:
    """Titan's form: one violation without its JSON pointer, several as a count."""
    if len(problems) == 1:
        return malformed([_POINTER.sub("", problems[0], count=1)])
    return malformed([f"{len(problems)} schema violations found"])


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
