"""Where a configuration key sits in its TOML file, so errors can name the line.

Best effort over the text: table headers (`[a.b]`, `[[a.b]]` with their index), `key = value`
lines and dotted or quoted keys. Values spread over several lines (inline arrays) resolve to
the line of their key.
"""

from __future__ import annotations

from collections.abc import Sequence


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
