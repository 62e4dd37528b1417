"""The word lists shipped with the guardrail detectors (`data/*.txt`), read once."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def wordlist(name: str) -> tuple[str, ...]:
    """The entries of `data/<name>`: one a line, blank lines and `#` comments skipped."""
    text = files("outcrop.guardrails").joinpath("data", name).read_text(encoding="utf-8")
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )
