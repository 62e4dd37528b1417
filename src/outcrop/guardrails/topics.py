"""Denied topics: a semantic similarity classifier on the all-MiniLM-L6-v2 sentence embeddings.

A topic is described by its definition and up to five example prompts. Each of those texts is
embedded once per guardrail version (`TopicIndex`). A text is split into sentences; each
sentence (and the whole text, when it has several and is short) is embedded, and the topic's
score is the highest cosine similarity between any of them and any of the topic's reference
texts. The topic is detected when its score reaches `SIMILARITY_THRESHOLD`, or when an example
prompt occurs in the text verbatim (case-insensitively), which scores 1.0.

The threshold (0.45) was chosen on all-MiniLM-L6-v2 by scoring on-topic paraphrases (investment
advice: "Should I put my savings into Apple shares?" 0.51, "Is gold a good investment?" 0.67;
medical advice: "I have a headache and fever, what pill should I take?" 0.45) against
off-topic questions ("Tell me about the history of the stock market." 0.40, "What is the capital
of Italy?" 0.12); tests/unit/test_guardrail_topics.py keeps such pairs on either side of it.
Like Bedrock's own classifier it is probabilistic: write definitions and examples that say what
the topic is, and check them with ApplyGuardrail.

The scoring is pure (`TopicIndex.scores` takes vectors); `TopicClassifier` runs the embedding
engine for it and caches each version's reference vectors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from outcrop.engines.embeddings import EmbeddingEngine
from outcrop.guardrails.model import Topic
from outcrop.types import EmbeddingRequest

SIMILARITY_THRESHOLD = 0.45
"""Cosine similarity (all-MiniLM-L6-v2) at which a text is on a denied topic."""

_MAX_WHOLE_TEXT = 300
"""Texts up to this many characters are also scored whole, beside their sentences (a longer
whole text would pad every sentence of the batch to its length, for little gain)."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

Vectors = npt.NDArray[np.float64]


def sentences(text: str) -> list[str]:
    """The sentences scored for `text` (and the whole text when it has several)."""
    parts = [p.strip() for p in _SENTENCE_END.split(text) if p and p.strip()]
    if len(parts) > 1 and len(text) <= _MAX_WHOLE_TEXT:
        parts.append(text.strip())
    return parts or ([text.strip()] if text.strip() else [])


def _unit_rows(vectors: Sequence[Sequence[float]]) -> Vectors:
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: Vectors = matrix / norms
    return result


@dataclass(frozen=True, slots=True)
class TopicIndex:
    """The reference vectors of a guardrail's topics (definition and examples of each)."""

    topics: tuple[Topic, ...]
    vectors: Vectors
    owners: tuple[int, ...]
    """For each row of `vectors`, the index of its topic."""

    @staticmethod
    def reference_texts(topics: Sequence[Topic]) -> list[tuple[int, str]]:
        return [
            (i, text)
            for i, topic in enumerate(topics)
            for text in (topic.definition, *topic.examples)
        ]

    @classmethod
    def build(cls, topics: Sequence[Topic], vectors: Sequence[Sequence[float]]) -> TopicIndex:
        owners = tuple(i for i, _ in cls.reference_texts(topics))
        return cls(tuple(topics), _unit_rows(vectors), owners)

    def scores(self, text: str, sentence_vectors: Sequence[Sequence[float]]) -> list[float]:
        """Each topic's score for `text`, whose `sentences()` were embedded as given."""
        best = [0.0] * len(self.topics)
        if len(sentence_vectors) and len(self.owners):
            similarity = _unit_rows(sentence_vectors) @ self.vectors.T
            per_reference = similarity.max(axis=0)
            for row, owner in enumerate(self.owners):
                best[owner] = max(best[owner], float(per_reference[row]))
        lowered = text.lower()
        for i, topic in enumerate(self.topics):
            if any(example.lower() in lowered for example in topic.examples if example.strip()):
                best[i] = 1.0
        return best


class TopicClassifier:
    """Scores texts against topics with an embedding engine (reference vectors cached)."""

    def __init__(self, embedder: EmbeddingEngine) -> None:
        self.embedder = embedder
        self._indexes: dict[tuple[Topic, ...], TopicIndex] = {}

    async def index(self, topics: Sequence[Topic]) -> TopicIndex:
        key = tuple(topics)
        cached = self._indexes.get(key)
        if cached is None:
            texts = [text for _, text in TopicIndex.reference_texts(topics)]
            cached = TopicIndex.build(topics, await self._embed(texts))
            self._indexes[key] = cached
        return cached

    async def scores(self, topics: Sequence[Topic], texts: Sequence[str]) -> list[float]:
        """Each topic's highest score over `texts`."""
        if not topics:
            return []
        index = await self.index(topics)
        split = [sentences(t) for t in texts]
        flat = [s for parts in split for s in parts]
        vectors = await self._embed(flat) if flat else []
        best = [0.0] * len(topics)
        offset = 0
        for text, parts in zip(texts, split, strict=True):
            own = vectors[offset : offset + len(parts)]
            offset += len(parts)
            for i, value in enumerate(index.scores(text, own)):
                best[i] = max(best[i], value)
        return best

    async def _embed(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        result = await self.embedder.embed(EmbeddingRequest(tuple(texts)))
        return [e.vector for e in result]
