"""Reading the decoded recordings of real Bedrock traffic (tests/fixtures/recordings/, copied
from the public recordings docs/recordings.md describes) and comparing our objects' structure
with them.

`stream_objects` / `response_body` pull the model JSON objects out of one recorded interaction;
`nr_stream` reads one section of New Relic's `nr_streamed.txt`. `shape` reduces a JSON value to
its keys (in order), value types and nesting, without the values; `stream_shape` reduces a
stream to the sequence of its objects' shapes with repeats folded (a run of text deltas, or a
repeated group such as Nova's delta + stop pairs, counts once), so streams of different lengths
but the same structure compare equal.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "recordings"

_INTERACTION = re.compile(r"^=== (?:interaction )?(\d+)", re.M)


def _interaction(name: str, index: int) -> str:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    marks = list(_INTERACTION.finditer(text))
    start = marks[index].end()
    end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
    return text[start:end]


def stream_objects(name: str, interaction: int = 0) -> list[dict[str, Any]]:
    """The `bytes` JSON objects of one recorded stream, in order."""
    section = _interaction(name, interaction)
    return [json.loads(m.group(1)) for m in re.finditer(r"^\s*BYTES: (.*)$", section, re.M)]


def response_body(name: str, interaction: int = 0) -> dict[str, Any]:
    """The JSON body of one recorded non-streaming response."""
    section = _interaction(name, interaction)
    match = re.search(r"^RESP (?:BODY|JSON): (.*)$", section, re.M)
    assert match is not None, f"no response body in {name}"
    body: dict[str, Any] = json.loads(match.group(1))
    return body


def nr_stream(model: str, prompt_prefix: str) -> list[dict[str, Any]]:
    """One stream of `nr_streamed.txt`, chosen by model ID and prompt prefix."""
    text = (FIXTURES / "nr_streamed.txt").read_text(encoding="utf-8")
    sections = re.split(r"^#### ", text, flags=re.M)[1:]
    for section in sections:
        header, _, rest = section.partition("\n")
        if header.startswith(f"{model}::{prompt_prefix}"):
            return [json.loads(m.group(1)) for m in re.finditer(r"BYTES: (.*)$", rest, re.M)]
    raise KeyError(f"{model}::{prompt_prefix}")


Shape = Any


def shape(value: Any) -> Shape:
    """The structure of a JSON value: keys in order, types, nesting; not the values."""
    if isinstance(value, dict):
        return ("object", tuple((key, shape(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("array", tuple(sorted({shape(item) for item in value}, key=repr)))
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null"


def fold_repeats(items: list[Shape], longest: int = 3) -> list[Shape]:
    """Fold immediately repeated runs (of up to `longest` items) into one occurrence."""
    folded = list(items)
    changed = True
    while changed:
        changed = False
        for size in range(1, longest + 1):
            i = 0
            while i + 2 * size <= len(folded):
                if folded[i : i + size] == folded[i + size : i + 2 * size]:
                    del folded[i + size : i + 2 * size]
                    changed = True
                else:
                    i += 1
    return folded


def stream_shape(objects: list[dict[str, Any]]) -> list[Shape]:
    return fold_repeats([shape(o) for o in objects])


def describe(shapes: list[Shape]) -> str:
    """A readable rendering for assertion messages."""
    return "\n".join(json.dumps(s) for s in shapes)
