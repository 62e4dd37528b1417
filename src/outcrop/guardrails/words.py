"""Word filters: the guardrail's own words and phrases, and the managed PROFANITY list.

Both are exact rules. A configured word or phrase matches case-insensitively as whole words,
with any run of whitespace in the text matching a space in the phrase; the trace reports the
configured text. The managed list (`data/profanity.txt`, shipped with Outcrop; AWS does not
publish its own) matches whole words case-insensitively, an entry ending in `*` matching any word
that starts with its stem; the trace reports the word as it appears in the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from outcrop.guardrails.lists import wordlist


@dataclass(frozen=True, slots=True)
class WordHit:
    start: int
    end: int
    match: str
    """The configured word (custom words) or the text found (managed lists)."""


@cache
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Whole-word, case-insensitive, whitespace-tolerant pattern for a configured phrase."""
    words = phrase.split()
    body = r"\s+".join(re.escape(w) for w in words) if words else re.escape(phrase)
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def find_words(text: str, phrases: Sequence[str]) -> list[tuple[int, WordHit]]:
    """Occurrences of the configured `phrases`, as (index of the phrase, hit)."""
    hits = []
    for index, phrase in enumerate(phrases):
        for m in phrase_pattern(phrase).finditer(text):
            hits.append((index, WordHit(m.start(), m.end(), phrase)))
    return hits


@cache
def _profanity() -> re.Pattern[str]:
    alternatives = []
    for entry in wordlist("profanity.txt"):
        if entry.endswith("*"):
            alternatives.append(re.escape(entry[:-1].lower()) + r"\w*")
        else:
            alternatives.append(re.escape(entry.lower()))
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def find_profanity(text: str) -> list[WordHit]:
    """Words of the managed PROFANITY list in `text`."""
    return [WordHit(m.start(), m.end(), m.group()) for m in _profanity().finditer(text)]


_WORDISH = re.compile(r"[\w']+|[^\w\s]")


def count_words(text: str) -> int:
    """Words and punctuation marks in `text`: the token count Outcrop reports for the
    guardrail's canned messages, which no model generated."""
    return len(_WORDISH.findall(text))
