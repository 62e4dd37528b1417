"""Constrained decoding of tool calls: a GBNF grammar derived from the offered tools' schemas.

When a request offers tools, the llama.cpp engine sends llama-server a GBNF grammar (its
`grammar` field; llama-server samples through it, checking each sampled token against it as
llama.cpp's common sampler does) that admits only the call format of `tool_calls` with, for
each tool, arguments that follow its JSON schema (converted by `SchemaConverter`,
llama-cpp-python's port of llama.cpp's json-schema-to-grammar, which `json_schema_grammar`
loads from the pinned sdist). How the model chooses between answering and calling:

- `toolChoice` `any`: the grammar admits a call to any offered tool and nothing else, so the
  model must call one; `tool`: only a call to the named tool.
- `auto`: the grammar admits either a call or answer text whose first character is not `<`.
  The model's first token decides.
  Exception: in the turn right after tool results, `auto` answers in text (no grammar), as the
  scripted engine does, so that an application's tool loop ends; a small local model without
  tool training otherwise tends to call the same tool again. `any` and `tool` still force a call.
- `none` (and no tools): no grammar.

After a call the grammar is complete, so only an end-of-turn token can follow: a turn holds at
most one call. Schema support is the converter's (types, properties, required, enums, const,
anyOf/oneOf/allOf, local $refs, string lengths, patterns, formats, array lengths), plus:
objects without `additionalProperties` get none (still valid against the schema), strings
exclude control characters (JSON forbids them raw), and integer bounds are enforced when the
range is small (at most MAX_ENUMERATED_INTEGERS values) or a plain lower bound of 0 or 1; other
numeric bounds are not enforced by the grammar. A schema the converter cannot handle falls back
to any JSON object.

Structured output (`GenerationRequest.response_schema`) uses the same conversion for the whole
answer (`response_grammar`): when no tool grammar applies, the answer is sampled through the
schema's grammar, and once the JSON value is complete only an end-of-turn token can follow.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from outcrop.engines.json_schema_grammar import SchemaConverter, schema_converter_class
from outcrop.engines.tool_calls import CALL_CLOSE, CALL_OPEN, answers_tool_results, call_header
from outcrop.types import GenerationRequest, ToolChoice, ToolSpec

MAX_ENUMERATED_INTEGERS = 256

_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})'
_ANY_OBJECT = {"type": "object"}
_ONE_SPACE = 'space ::= | " "'


@dataclass(frozen=True, slots=True)
class ToolGrammar:
    """A grammar for one request: its GBNF text and whether answer text is allowed."""

    gbnf: str
    allows_text: bool
    """True for `auto`: the model may answer instead of calling."""
    tool_calls: bool = True
    """False for a structured-output grammar: the text is the answer, not a tool call."""


def grammar_for(request: GenerationRequest) -> ToolGrammar | None:
    """The grammar `request` is sampled through, if any (see the module docstring)."""
    if request.tool_choice.mode == "auto" and answers_tool_results(request):
        tools = None
    else:
        tools = build_grammar(request.tools, request.tool_choice)
    if tools is None and request.response_schema is not None:
        return response_grammar(request.response_schema)
    return tools


def response_grammar(schema: Mapping[str, Any]) -> ToolGrammar:
    """The grammar of an answer that is JSON valid for `schema` (structured output).

    The same conversion as tool arguments (any JSON object when the converter cannot handle
    the schema); whitespace between tokens is at most one space, so that a small model cannot
    spend its budget on indentation. Usable by any engine that takes GBNF (llama.cpp).
    """
    converter = _Converter()
    rule = converter.arguments_rule(schema, "answer")
    rules = [
        _ONE_SPACE if line.startswith("space ::=") else line
        for line in converter.rules().splitlines()
    ]
    return ToolGrammar("\n".join([f"root ::= {rule}", *rules]), allows_text=False, tool_calls=False)


def build_grammar(tools: Sequence[ToolSpec], choice: ToolChoice) -> ToolGrammar | None:
    """The grammar for a request offering `tools` with `choice` (None: no constraint)."""
    if not tools or choice.mode == "none":
        return None
    offered = [t for t in tools if choice.mode != "tool" or t.name == choice.name]
    converter = _Converter()
    alternatives: list[str] = []
    for index, tool in enumerate(offered):
        rule = converter.arguments_rule(tool.input_schema, f"tool{index}-args")
        alternatives.append(f"{_literal(call_header(tool.name))} {rule}")
    call = f"{_literal(CALL_OPEN)} ( {' | '.join(alternatives)} ) {_literal('}' + CALL_CLOSE)}"
    allows_text = choice.mode == "auto"
    root = "root ::= call | text" if allows_text else "root ::= call"
    lines = [root, f"call ::= {call}"]
    if allows_text:
        lines.append(r"text ::= [^<] [^\x00]*")
    lines.append(converter.rules())
    return ToolGrammar("\n".join(lines), allows_text)


def could_still_call(text: str) -> bool:
    """Whether answer text that begins with `text` may still turn out to be a call."""
    return text.startswith(CALL_OPEN) or CALL_OPEN.startswith(text)


def _literal(text: str) -> str:
    """A GBNF string literal (JSON string escapes are valid GBNF escapes)."""
    return json.dumps(text)


class _Converter:
    """llama.cpp's converter, with the additions the module docstring lists."""

    def __init__(self) -> None:
        self._upstream = _converter_class()(
            prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
        )

    def arguments_rule(self, schema: Mapping[str, Any], name: str) -> str:
        prepared = _prepare(copy.deepcopy(dict(schema)))
        try:
            resolved = self._upstream.resolve_refs(prepared, name)
            return self._upstream.visit(resolved, name)
        except Exception:  # the converter raises assorted errors for schemas it lacks
            return self._upstream.visit(_ANY_OBJECT, name)

    def rules(self) -> str:
        lines = self._upstream.format_grammar().splitlines()
        return "\n".join(_JSON_CHAR if line.startswith("char ::=") else line for line in lines)


@functools.cache
def _converter_class() -> type[SchemaConverter]:
    """Upstream's `SchemaConverter` with bounded integers in front of its `visit`.

    A subclass, since upstream's `visit` calls `self.visit` for nested schemas too; built once
    the upstream class is loaded (`json_schema_grammar`), hence with `type()`.
    """
    base = schema_converter_class()

    def visit(self: SchemaConverter, schema: Any, name: str) -> str:
        if (
            isinstance(schema, dict)
            and schema.get("type") == "integer"
            and "enum" not in schema
            and "const" not in schema
        ):
            rule = _integer_rule(schema)
            if rule is not None:
                return self._add_rule(name or "root", rule)
        return base.visit(self, schema, name)

    return cast(type[SchemaConverter], type("_Converter", (base,), {"visit": visit}))


def _prepare(schema: Any) -> Any:
    """Close objects without `additionalProperties` (recursively); leave the rest as is."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            schema[key] = _prepare(value)
        if schema.get("type") == "object" and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        return [_prepare(item) for item in schema]
    return schema


def _integer_rule(schema: Mapping[str, Any]) -> str | None:
    """A GBNF rule for a bounded integer, or None to let the converter handle it."""
    low = _bound(schema, "minimum", "exclusiveMinimum", 1)
    high = _bound(schema, "maximum", "exclusiveMaximum", -1)
    if low is None and high is None:
        return None
    if low is not None and high is not None:
        if high < low:
            return None
        if high - low < MAX_ENUMERATED_INTEGERS:
            return "(" + " | ".join(f'"{n}"' for n in range(low, high + 1)) + ") space"
    if high is None and low == 0:
        return '("0" | [1-9] [0-9]{0,15}) space'
    if high is None and low == 1:
        return "[1-9] [0-9]{0,15} space"
    return None


def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str, step: int) -> int | None:
    if isinstance(schema.get(exclusive), int | float):
        value = schema[exclusive]
        return int(value) + step if float(value).is_integer() else _ceil_or_floor(value, step)
    if isinstance(schema.get(inclusive), int | float):
        value = schema[inclusive]
        return int(value) if float(value).is_integer() else _ceil_or_floor(value, step)
    return None


def _ceil_or_floor(value: float, step: int) -> int:
    return math.ceil(value) if step > 0 else math.floor(value)
