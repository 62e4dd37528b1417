"""Sentences in streamed text."""

from __future__ import annotations

from outcrop.speech.text import SentenceSplitter


def split(pieces: list[str]) -> list[str]:
    splitter = SentenceSplitter()
    out = [s for piece in pieces for s in splitter.feed(piece)]
    return out + splitter.flush()


def test_sentences_complete_as_tokens_arrive() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Hello there") == []
    assert splitter.feed("3.5 km. How are") == ["Hello there3.5 km."]
    assert splitter.feed(" you? Fine") == ["How are you?"]
    assert splitter.flush() == ["Fine"]


def test_markup_is_not_spoken_and_long_runs_are_cut() -> None:
    assert split(["**Bold** and `code`.\n# Title\n"]) == ["Bold and code.", "Title"]
    long = split(["word " * 100])
    assert len(long) > 1 and all(len(s) <= 220 for s in long)
