"""restJson1 request bodies checked against botocore's input shapes.

`parse_json_body` decodes an operation's JSON body and checks it member by member against the
operation's input shape from the service model (types, required members, unions with exactly
one member set, enums, length and range bounds, patterns, base64 blobs), so that an operation's
handler never re-describes a shape the model already describes. Members the model does not know
are ignored, as AWS's JSON protocols do. Violations raise `ValidationException` in the Coral
format (`1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to
satisfy constraint: Member must have value greater than or equal to 1`), with Coral's
1-based `list.N.member` paths.

The Coral wording for range, length, enum and pattern constraints is the one AWS services share;
for a wrong JSON type or a union with several members set, AWS's exact wording is unverified
(real clients never send these: the SDKs validate first).

`load_json` is the one decoder of JSON that comes from a client (request bodies, the inner
events of bidirectional streams, container bodies, JSON in headers). It refuses, as
`JsonInputError`, what would otherwise break the code behind it (docs/input-validation.md):
text that is not UTF-8 or not JSON, `NaN` and `Infinity` (not JSON, though Python's `json`
accepts them), lone surrogates (not encodable as UTF-8, so never answerable), numbers that
overflow a double, and nesting deeper than `[limits] max_json_depth` (default
`DEFAULT_MAX_JSON_DEPTH`). Integers beyond 64 bits become doubles, as in JavaScript.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import orjson
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

from outcrop.wire.errors import ValidationException

MALFORMED_BODY = "Malformed input request, please reformat your input and try again."
"""What Bedrock answers for a body that is not JSON at all."""

MAX_REPORTED = 10
"""Coral lists at most this many violations; the count still counts them all (unverified)."""


DEFAULT_MAX_JSON_DEPTH = 100
"""Containers (objects and arrays) one inside another that a client's JSON may hold. Real tool
schemas and documents stay far below it; Python's recursive code (validation, templates,
serialization) stays far from its recursion limit."""

_limits = {"max_depth": DEFAULT_MAX_JSON_DEPTH}


def set_max_json_depth(depth: int) -> None:
    """Set the nesting limit of `load_json` (from `[limits] max_json_depth`, at start-up)."""
    if depth < 1:
        raise ValueError("the JSON nesting limit is at least 1")
    _limits["max_depth"] = depth


def max_json_depth() -> int:
    return _limits["max_depth"]


class JsonInputError(ValueError):
    """Client JSON that `load_json` refuses; `line` and `column` locate syntax errors (1-based),
    `at_end` says the text ended too early."""

    def __init__(self, reason: str, line: int = 1, column: int = 1, at_end: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column
        self.at_end = at_end


def load_json(raw: bytes | bytearray | memoryview | str) -> Any:
    """A client's JSON value, or JsonInputError (see the module docstring for what is refused).

    orjson does the decoding: it refuses invalid UTF-8, lone surrogates, NaN and Infinity and
    overflowing numbers itself, and nesting beyond 1024 without recursing in Python.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        at_end = exc.pos >= len(exc.doc.rstrip()) if exc.doc else False
        raise JsonInputError(exc.msg, exc.lineno, exc.colno, at_end) from None
    limit = _limits["max_depth"]
    if _nesting_exceeds(value, limit, raw):
        raise JsonInputError(f"nesting deeper than {limit} levels")
    return value


def _nesting_exceeds(value: Any, limit: int, raw: bytes | bytearray | memoryview | str) -> bool:
    if isinstance(raw, str):
        opened = raw.count("[") + raw.count("{")
    else:
        data = bytes(raw)
        opened = data.count(b"[") + data.count(b"{")
    if opened <= limit:  # cannot be deeper than the brackets it holds (quick path)
        return False
    # Level by level: one list comprehension per container is the fastest walk in Python.
    level: list[Any] = [value] if type(value) in (dict, list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            children = node.values() if type(node) is dict else node
            below += [child for child in children if type(child) in (dict, list)]
        level = below
    return False


def decode_json_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or Bedrock's generic malformed-request error."""
    try:
        value = load_json(raw)
    except JsonInputError:
        raise ValidationException(MALFORMED_BODY) from None
    if not isinstance(value, dict):
        raise ValidationException(MALFORMED_BODY)
    return value


def parse_json_body(operation: OperationModel, raw: bytes) -> dict[str, Any]:
    """The body members of `operation`'s input, checked against the model; raises
    `ValidationException` for a body that is not a JSON object or violates the model."""
    body = decode_json_body(raw) if raw.strip() else {}
    shape = operation.input_shape
    if shape is None:
        return body
    problems = list(body_violations(shape, body))
    if problems:
        raise ValidationException(coral_message(problems))
    return body


def body_violations(shape: StructureShape, body: dict[str, Any]) -> Iterator[str]:
    """Violations of the body members (members bound to the URI or headers are skipped)."""
    for name, member in shape.members.items():
        if member.serialization.get("location"):
            continue
        value = body.get(name)
        if value is None:
            if name in shape.required_members:
                yield _violation(None, name, "Member must not be null")
            continue
        yield from value_violations(member, value, name)


def value_violations(shape: Shape, value: Any, path: str) -> Iterator[str]:
    """Violations of one value against its shape; `path` is the Coral member path."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        yield from _structure(shape, value, path)
    elif kind == "list":
        assert isinstance(shape, ListShape)
        if not isinstance(value, list):
            yield _violation(value, path, "Member must be a list")
            return
        yield from _length(value, path, shape.metadata)
        for index, item in enumerate(value, start=1):
            item_path = f"{path}.{index}.member"
            if item is None:
                yield _violation(None, item_path, "Member must not be null")
            else:
                yield from value_violations(shape.member, item, item_path)
    elif kind == "map":
        assert isinstance(shape, MapShape)
        if not isinstance(value, dict):
            yield _violation(value, path, "Member must be a map")
            return
        yield from _length(value, path, shape.metadata)
        for key, item in value.items():
            yield from _string(shape.key, key, f"{path}.{key}.key")
            if item is not None:
                yield from value_violations(shape.value, item, f"{path}.{key}.value")
    elif kind == "string":
        if not isinstance(value, str):
            yield _violation(value, path, "Member must be a string")
            return
        yield from _string(shape, value, path)
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            yield _violation(value, path, "Member must be an integer")
            return
        yield from _range(value, path, shape.metadata)
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            yield _violation(value, path, "Member must be a number")
            return
        yield from _range(value, path, shape.metadata)
    elif kind == "boolean":
        if not isinstance(value, bool):
            yield _violation(value, path, "Member must be a boolean")
    elif kind == "blob":
        if not isinstance(value, str) or not _is_base64(value):
            yield _violation(value, path, "Member must be base64-encoded binary data")
            return
        yield from _length(base64.b64decode(value), path, shape.metadata)
    elif kind == "timestamp" and (
        isinstance(value, bool) or not isinstance(value, int | float | str)
    ):
        yield _violation(value, path, "Member must be a timestamp")
    # "document" (and anything newer): any JSON value.


def _structure(shape: StructureShape, value: Any, path: str) -> Iterator[str]:
    if not isinstance(value, dict):
        yield _violation(value, path, "Member must be a structure")
        return
    if shape.metadata.get("union"):
        present = [k for k in value if k in shape.members and value[k] is not None]
        if len(present) != 1:
            # The SDKs refuse to send such unions; AWS's wording is unverified.
            yield _violation(None, path, "Member must have exactly one of its union members set")
            return
    for name, member in shape.members.items():
        item = value.get(name)
        member_path = f"{path}.{name}"
        if item is None:
            if name in shape.required_members:
                yield _violation(None, member_path, "Member must not be null")
            continue
        yield from value_violations(member, item, member_path)


def _string(shape: Shape, value: str, path: str) -> Iterator[str]:
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        yield _violation(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
    yield from _length(value, path, shape.metadata)
    pattern = shape.metadata.get("pattern")
    # AWS matches the whole value (Bedrock refuses the tool name 'Complete Session' for the
    # pattern [a-zA-Z0-9_-]+, per a public report quoting its ValidationException).
    if pattern and _compiled(pattern).fullmatch(value) is None:
        yield _violation(value, path, f"Member must satisfy regular expression pattern: {pattern}")


def _length(value: str | bytes | list[Any] | dict[str, Any], path: str, meta: Any) -> Iterator[str]:
    if "min" in meta and len(value) < int(meta["min"]):
        yield _violation(
            value, path, f"Member must have length greater than or equal to {meta['min']}"
        )
    if "max" in meta and len(value) > int(meta["max"]):
        yield _violation(
            value, path, f"Member must have length less than or equal to {meta['max']}"
        )


def _range(value: float, path: str, meta: Any) -> Iterator[str]:
    if "min" in meta and value < meta["min"]:
        yield _violation(
            value, path, f"Member must have value greater than or equal to {_num(meta['min'])}"
        )
    if "max" in meta and value > meta["max"]:
        yield _violation(
            value, path, f"Member must have value less than or equal to {_num(meta['max'])}"
        )


def _violation(value: Any, path: str, constraint: str) -> str:
    if value is None:
        shown = "null"
    elif isinstance(value, str):
        shown = f"'{value[:64]}'"
    elif isinstance(value, bytes):
        shown = "'java.nio.HeapByteBuffer'"  # how Coral prints a blob (never echoes its bytes)
    elif isinstance(value, bool):
        shown = f"'{str(value).lower()}'"
    elif isinstance(value, int | float):
        shown = f"'{_num(value)}'"
    else:
        shown = ""
    subject = f"Value {shown} at" if shown else "Value at"
    return f"{subject} '{path}' failed to satisfy constraint: {constraint}"


def coral_message(problems: list[str]) -> str:
    """`N validation error(s) detected: p1; p2; ...` (Coral's format)."""
    count = len(problems)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(problems[:MAX_REPORTED])


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
