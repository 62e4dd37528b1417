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


def items(value: Any) -> list[Any]:
    """`value` if it is a JSON array, else no items: for walking a member whose type error
    was already reported (or that is absent) without tripping over it."""
    return value if isinstance(value, list) else []


def members(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else no members (see `items`)."""
    return value if isinstance(value, dict) else {}


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


# -- tool input schemas --------------------------------------------------------------------------

_SUBSCHEMA: tuple[str, ...] = ("not", "additionalProperties", "additionalItems", "contains")
_SUBSCHEMA += ("propertyNames", "if", "then", "else", "unevaluatedProperties", "unevaluatedItems")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
_NUMBERS = ("minimum", "maximum", "multipleOf")
_STRINGS = ("title", "description", "pattern", "format", "$ref", "$schema", "$id")
_JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})


def tool_schema_problems(schema: Any, pointer: str) -> list[str]:
    """Violations of the JSON Schema meta-schema in a tool's input schema, for the keywords
    whose type the engines rely on (`type`, `properties`, `required`, `items`, the combinators,
    the bounds); other keywords pass as the meta-schema allows. Bedrock refuses an invalid tool
    schema before any generation; its wording per model is unverified, so the violations take
    this module's pointer form."""
    if isinstance(schema, bool):  # `true` / `false` are schemas too
        return []
    if not isinstance(schema, dict):
        return [f"{pointer}: expected type: JSONObject, found: {type_name(schema)}"]
    problems: list[str] = []
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "type" in schema and not all(isinstance(k, str) and k in _JSON_TYPES for k in kinds):
        problems.append(f"{pointer}/type: {_shown(kind)} is not a valid JSON Schema type")
    for key in _SUBSCHEMA:
        if key in schema:
            problems += tool_schema_problems(schema[key], f"{pointer}/{key}")
    for key in _SUBSCHEMA_MAPS:
        if key in schema:
            value = schema[key]
            if not isinstance(value, dict):
                problems.append(
                    f"{pointer}/{key}: expected type: JSONObject, found: {type_name(value)}"
                )
                continue
            for name, sub in value.items():
                problems += tool_schema_problems(sub, f"{pointer}/{key}/{name}")
    for key in _SUBSCHEMA_LISTS:
        if key in schema:
            value = schema[key]
            if not isinstance(value, list) or not value:
                problems.append(f"{pointer}/{key}: expected a non-empty JSONArray of schemas")
                continue
            for index, sub in enumerate(value):
                problems += tool_schema_problems(sub, f"{pointer}/{key}/{index}")
    if "items" in schema:
        value = schema["items"]
        subs = value if isinstance(value, list) else [value]
        for index, sub in enumerate(subs):
            where = f"{pointer}/items/{index}" if isinstance(value, list) else f"{pointer}/items"
            problems += tool_schema_problems(sub, where)
    if "required" in schema:
        value = schema["required"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{pointer}/required: expected a JSONArray of strings")
    if "enum" in schema and not isinstance(schema["enum"], list):
        problems.append(
            f"{pointer}/enum: expected type: JSONArray, found: {type_name(schema['enum'])}"
        )
    for key in _COUNTS:
        if key in schema and not (_is(schema[key], "integer") and schema[key] >= 0):
            problems.append(f"{pointer}/{key}: expected a non-negative Integer")
    for key in _NUMBERS:
        if key in schema and not _is(schema[key], "number"):
            problems.append(
                f"{pointer}/{key}: expected type: Number, found: {type_name(schema[key])}"
            )
    for key in ("exclusiveMinimum", "exclusiveMaximum"):  # a boolean in draft 4
        if key in schema and not isinstance(schema[key], int | float):
            problems.append(
                f"{pointer}/{key}: expected type: Number, found: {type_name(schema[key])}"
            )
    for key in _STRINGS:
        if key in schema and not isinstance(schema[key], str):
            problems.append(
                f"{pointer}/{key}: expected type: String, found: {type_name(schema[key])}"
            )
    return problems


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else type_name(value)
