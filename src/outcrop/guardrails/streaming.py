"""Guarding a stream of text pieces: when to check, and how masks land on the pieces.

Synchronous stream processing holds the model's text pieces back until a chunk of at least
`chunk_chars` characters has gathered and a word boundary follows (or the model has finished),
checks the chunk, and then releases its pieces. Masks found in the chunk are laid back onto the
original pieces (`redistribute`): a piece that contained the start of a masked span carries the
placeholder, and text swallowed by a mask disappears from the pieces that held it (they may
become empty), as real Bedrock streams show ("{ADDRESS}", " is", ..., " {Account Number}", "",
"" in traceloop__test_nova_converse_stream). Asynchronous processing releases each piece at once
and checks chunks as they complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class ChunkBuffer:
    """Pieces waiting to be checked as one chunk.

    A chunk closes at a word boundary: once `chunk_chars` have gathered, the next piece that
    starts with whitespace begins a new chunk, so no word (an e-mail address, a number) is split
    between two checks."""

    chunk_chars: int
    pieces: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    size: int = 0

    def add(self, piece: str, count: int = 0) -> tuple[list[str], list[int]] | None:
        """Add a piece (and its token count); returns the chunk it closes, if it closes one."""
        closed = None
        if self.size >= self.chunk_chars and piece[:1].isspace():
            closed = self.take()
        self.pieces.append(piece)
        self.counts.append(count)
        self.size += len(piece)
        return closed

    def take(self) -> tuple[list[str], list[int]]:
        """The buffered pieces and token counts, emptying the buffer."""
        taken = (self.pieces, self.counts)
        self.pieces, self.counts, self.size = [], [], 0
        return taken

    def __bool__(self) -> bool:
        return bool(self.pieces)


def redistribute(pieces: Sequence[str], masks: Sequence[tuple[int, int, str]]) -> list[str]:
    """The pieces of `"".join(pieces)` after masking its (start, end, placeholder) spans
    (ordered, disjoint), keeping the piece boundaries."""
    out: list[str] = []
    offset = 0
    index = 0
    for piece in pieces:
        start, end = offset, offset + len(piece)
        parts: list[str] = []
        position = start
        while position < end:
            while index < len(masks) and masks[index][1] <= position:
                index += 1
            if index < len(masks) and masks[index][0] < end:
                m_start, m_end, placeholder = masks[index]
                if m_start > position:
                    parts.append(piece[position - start : m_start - start])
                    position = m_start
                if m_start >= start and position == m_start:
                    parts.append(placeholder)
                position = min(m_end, end)
            else:
                parts.append(piece[position - start :])
                position = end
        out.append("".join(parts))
        offset = end
    return out
