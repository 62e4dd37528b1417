"""Where a configuration key sits in its TOML file, so errors can name the line.

Best effort over the text: table headers (`[a.b]`, `[[a.b]]` with their index), `key = value`
lines and dotted or quoted keys. Values spread over several lines (inline arrays) resolve to
the line of their key.

pydantic's error locations name a tagged union's tag after the key that holds the union
(`engines.default.llamacpp.n_ctx` for `[engines.default] type = "llamacpp"`); `file_loc` drops
such tags so the location reads as the file's keys. A validator that checks one key in the
context of others (a route naming an engine) raises `KeyProblem` with that key's location.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class KeyProblem(ValueError):
    """A validation error about one key, raised where pydantic would locate it elsewhere.

    `loc` is the key's location in the file (as in pydantic's `loc`); `message` is said
    without pydantic's `Value error, ` prefix.
    """

    def __init__(self, loc: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.loc = tuple(loc)
        self.message = message


def file_loc(data: object, loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """`loc` with tagged-union tags removed: the parts that are not keys of `data`.

    Walking the parsed file along `loc`, a part that is no key of the table reached but equals
    that table's `type` value is the union's tag, not a key.
    """
    kept: list[str | int] = []
    here: Any = data
    for part in loc:
        if isinstance(here, Mapping):
            if part not in here and here.get("type") == part:
                continue
            here = here.get(part) if isinstance(part, str) else None
        elif isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here):
            here = here[part]
        else:
            here = None
        kept.append(part)
    return tuple(kept)


def split_key(key: str) -> tuple[str, ...]:
    """`a."b.c".d` → ("a", "b.c", "d")."""
    parts: list[str] = []
    current = ""
    quote: str | None = None
    for char in key:
        if quote is not None:
            if char == quote:
                quote = None
            else:
                current += char
        elif char in "\"'":
            quote = char
        elif char == ".":
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return tuple(parts)


def line_of(text: str, loc: Sequence[str | int]) -> int | None:
    """The 1-based line that defines `loc` (a pydantic error location), or its nearest parent."""
    want = tuple(str(p) for p in loc)
    header: tuple[str, ...] = ()
    counts: dict[tuple[str, ...], int] = {}
    best: tuple[int, int] | None = None  # (matched depth, line)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            parts = split_key(line[2 : line.find("]]")])
            index = counts.get(parts, -1) + 1
            counts[parts] = index
            header = (*parts, str(index))
            path = header
        elif line.startswith("["):
            header = split_key(line[1 : line.find("]")])
            path = header
        elif "=" in line:
            path = header + split_key(line.split("=", 1)[0])
        else:
            continue
        depth = _common(path, want)
        if depth == len(path) and (best is None or depth > best[0]):
            best = (depth, number)
    return best[1] if best is not None else None


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
