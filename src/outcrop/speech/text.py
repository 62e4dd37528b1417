"""Generated text on its way to the voice: sentences as they complete, and tool calls.

`SentenceSplitter` takes text as the engine streams it and gives back each sentence once it is
complete, so synthesis can start before the answer is finished. `ToolCallScanner` watches the
same stream for a `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` block (the
convention `tool_instructions` describes to the model): text before it is spoken, the call is
returned whole, and text that merely might be the start of a call is held back until it is not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from outcrop.speech.protocol import ToolSpec

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")
_MARKUP = re.compile(r"[*_#`>|~]+")
_MAX_SENTENCE = 220


class SentenceSplitter:
    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        sentences: list[str] = []
        while True:
            found = _SENTENCE_END.search(self._buffer)
            if found is None:
                break
            sentence, self._buffer = self._buffer[: found.start()], self._buffer[found.end() :]
            sentences.append(sentence)
        while len(self._buffer) > _MAX_SENTENCE:
            cut = self._buffer.rfind(" ", 0, _MAX_SENTENCE)
            cut = cut if cut > 0 else _MAX_SENTENCE
            sentences.append(self._buffer[:cut])
            self._buffer = self._buffer[cut:]
        return [s for s in (speakable(s) for s in sentences) if s]

    def flush(self) -> list[str]:
        rest, self._buffer = speakable(self._buffer), ""
        return [rest] if rest else []


def speakable(text: str) -> str:
    """Text without markdown markup and runs of whitespace."""
    return " ".join(_MARKUP.sub("", text).split())


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str
    """The input as a JSON string (what toolUse.content carries)."""

    def markup(self) -> str:
        """The call as the model writes it (for the conversation history)."""
        return f'{OPEN}{{"name": {json.dumps(self.name)}, "arguments": {self.arguments}}}{CLOSE}'


class ToolCallScanner:
    def __init__(self) -> None:
        self._held = ""
        self._call: str | None = None

    def feed(self, text: str) -> tuple[str, ToolCall | None]:
        """Text safe to speak now, and the tool call once its closing tag arrived."""
        if self._call is not None:
            self._call += text
            end = self._call.find(CLOSE)
            if end == -1:
                return "", None
            body, self._call = self._call[:end], None
            return "", parse_tool_call(body)
        self._held += text
        start = self._held.find(OPEN)
        if start != -1:
            before, self._call = self._held[:start], ""
            rest = self._held[start + len(OPEN) :]
            self._held = ""
            spoken, call = self.feed(rest)
            return before + spoken, call
        keep = _partial_tag(self._held)
        out, self._held = self._held[: len(self._held) - keep], self._held[len(self._held) - keep :]
        return out, None

    def flush(self) -> str:
        """What is left when generation ends (an unfinished call is dropped)."""
        rest, self._held, self._call = self._held, "", None
        return rest


def _partial_tag(text: str) -> int:
    """How many trailing characters of `text` could begin `<tool_call>`."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


def parse_tool_call(body: str) -> ToolCall | None:
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", value.get("input", {}))
    return ToolCall(value["name"], json.dumps(arguments))


def tool_instructions(tools: tuple[ToolSpec, ...]) -> str:
    """What the system prompt tells the language model about the client's tools."""
    lines = [
        "You can call these tools. To call one, answer with exactly "
        f'{OPEN}{{"name": "<tool name>", "arguments": {{...}}}}{CLOSE} and nothing after it; '
        "the result comes back in the next message.",
    ]
    for tool in tools:
        lines.append(f"- {tool.name}: {tool.description} Input schema: {tool.input_schema}")
    return "\n".join(lines)
