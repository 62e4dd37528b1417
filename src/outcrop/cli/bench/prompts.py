"""The prompts a benchmark sends: a built-in set, or a file.

Files: `.jsonl` (one JSON object per line with a `prompt` string, or one JSON string per line),
`.json` (a list of strings), anything else plain text with one prompt per non-empty line.
Requests take the prompts in order, round robin.
"""

from __future__ import annotations

import json
from pathlib import Path

BUILT_IN: tuple[str, ...] = (
    "Explain in two sentences why the sky is blue.",
    "Write a haiku about a lighthouse in winter.",
    "List five practical tips for writing readable Python code.",
    "Summarize the plot of Romeo and Juliet in one paragraph.",
    "What is the difference between a process and a thread?",
    "Translate 'Good morning, how did you sleep?' into French and Spanish.",
    "Give three arguments for and three against working from home.",
    "Describe how a hash table works to a ten-year-old.",
    "Write a short product description for a solar-powered backpack.",
    "What causes the seasons on Earth? Answer briefly.",
    "Suggest a name and a tagline for a neighbourhood bakery.",
    "Explain what an HTTP status code 429 means and how a client should react.",
)


class PromptFileError(ValueError):
    """The prompt file is unreadable or holds no prompts; the message says why."""


def load_prompts(path: Path | None) -> list[str]:
    """The prompts in `path`, or the built-in set when `path` is None."""
    if path is None:
        return list(BUILT_IN)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptFileError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PromptFileError(f"{path}: not UTF-8 text") from None
    prompts = _parse(path, text)
    if not prompts:
        raise PromptFileError(f"{path}: no prompts in it")
    return prompts


def _parse(path: Path, text: str) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise PromptFileError(f"{path}: not JSON: {exc}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PromptFileError(f"{path}: expected a JSON list of strings")
        return [v for v in value if v.strip()]
    lines = [line for line in text.splitlines() if line.strip()]
    if suffix != ".jsonl":
        return lines
    prompts = []
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise PromptFileError(f"{path}:{number}: not JSON: {exc}") from None
        if isinstance(value, dict):
            value = value.get("prompt")
        if not isinstance(value, str):
            raise PromptFileError(f'{path}:{number}: expected a string or {{"prompt": "..."}}')
        prompts.append(value)
    return prompts
