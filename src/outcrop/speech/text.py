"""Generated text on its way to the voice: sentences as they complete.

`SentenceSplitter` takes text as the engine streams it and gives back each sentence once it is
complete, so synthesis can start before the answer is finished. (Tool calls do not pass through
here: the engine reports them as `ToolCallEvent`s, see speech/session.py.)
"""

from __future__ import annotations

import re

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
