"""Mutations of valid JSON request bodies, driven by a `random.Random`.

A mutant is a seed body with a few changes of the kinds that broke the server before: a value
replaced by one of another JSON type, a huge integer, an overflowing float, `NaN` or `Infinity`
(as Python's `json` writes them), a lone surrogate, very deep nesting; a member removed or added;
and, at the byte level, truncation, flipped bytes and inserted bytes. The same functions serve
the hypothesis tests (with a hypothesis-controlled `Random`, so failures shrink and replay) and
the census script (`python -m tests.fuzz.census`), which counts outcomes over N mutants.
"""

from __future__ import annotations

import json
import random
from typing import Any

DEEP = "\x00outcrop-fuzz-deep\x00"
"""Stands for a deeply nested value until serialization (json.dumps cannot write one)."""

Path = tuple[str | int, ...]

NASTY: tuple[Any, ...] = (
    "",
    "x",
    "\ud800",
    "a\udc00b",
    "\x00",
    "𝔘nicode ✓",
    "x" * 5000,
    0,
    -1,
    1,
    2**31,
    2**63,
    -(2**63) - 1,
    2**64,
    10**30,
    10**400,
    1.5,
    -0.5,
    1e308,
    1e-320,
    float("inf"),
    float("-inf"),
    float("nan"),
    True,
    False,
    None,
    [],
    {},
    [None],
    [1, "a"],
    {"": None},
    {"type": "object", "properties": 5},
    DEEP,
)


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every node of a JSON value, the root included, as key/index paths."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def _get(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step]
    return value


def _replace(value: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def _delete(value: Any, path: Path) -> Any:
    if len(path) == 1:
        copy: Any = dict(value) if isinstance(value, dict) else list(value)
        del copy[path[0]]
        return copy
    return _replace(value, path[:1], _delete(value[path[0]], path[1:]))


def mutate_tree(value: Any, rng: random.Random) -> Any:
    """One structural change at a random node."""
    targets = paths(value)
    path = rng.choice(targets)
    node = _get(value, path)
    kind = rng.random()
    if kind < 0.55:
        return _replace(value, path, rng.choice(NASTY))
    if kind < 0.7 and path:
        return _delete(value, path)
    if kind < 0.85 and isinstance(node, dict):
        key = rng.choice(["", "x", "type", "text", "json", "\ud800", *node.keys()])
        return _replace(value, path, {**node, key: rng.choice(NASTY)})
    if isinstance(node, list):
        return _replace(value, path, [*node, rng.choice(NASTY)])
    # Wrap the node in a container, or put it in place of its parent's type.
    return _replace(value, path, rng.choice([[node], {"x": node}, str(node)]))


def serialize(value: Any, rng: random.Random) -> bytes:
    """JSON text of a mutant (NaN/Infinity as Python writes them, deep nesting expanded)."""
    text = json.dumps(value, ensure_ascii=rng.random() < 0.7, allow_nan=True)
    marker = json.dumps(DEEP)
    if marker in text:
        depth = rng.choice([65, 101, 1000, 1025, 5000, 100_000])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        text = text.replace(marker, opener * depth + "1" + closer * depth)
    return text.encode("utf-8", "surrogatepass")


def mutate_bytes(raw: bytes, rng: random.Random) -> bytes:
    """One byte-level change: truncate, flip, insert or duplicate."""
    if not raw:
        return bytes([rng.randrange(256)])
    kind = rng.randrange(4)
    at = rng.randrange(len(raw))
    if kind == 0:
        return raw[:at]
    if kind == 1:
        return raw[:at] + bytes([raw[at] ^ (1 << rng.randrange(8))]) + raw[at + 1 :]
    if kind == 2:
        insert = rng.choice([b"\xff", b"\xed\xa0\x80", b"NaN", b"-", b"[", b"{", b'"', b"\\u"])
        return raw[:at] + insert + raw[at:]
    end = min(len(raw), at + rng.randrange(1, 64))
    return raw[:end] + raw[at:end] + raw[end:]


def mutant(body: Any, rng: random.Random) -> bytes:
    """A mutated body: one to three structural changes, sometimes a byte-level change too."""
    value = body
    for _ in range(rng.choice((1, 1, 2, 3))):
        value = mutate_tree(value, rng)
    raw = serialize(value, rng)
    if rng.random() < 0.15:
        raw = mutate_bytes(raw, rng)
    return raw
