"""The embedding engine on the real all-MiniLM-L6-v2 weights, against published reference values."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outcrop.engines import embeddings
from outcrop.engines.base import EngineUnavailable
from outcrop.engines.embeddings import BertEmbedder, EmbeddingInputTooLong, default_model_dir
from outcrop.types import EmbeddingRequest


@pytest.fixture(scope="module")
def embedder() -> Iterator[BertEmbedder]:
    engine = BertEmbedder()
    yield engine
    asyncio.run(engine.close())


def unit(engine: BertEmbedder, *texts: str) -> np.ndarray:
    vectors = np.array([e.vector for e in engine.embed_sync(EmbeddingRequest(texts))])
    normalized: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalized


def test_model_ships_in_the_package() -> None:
    root = default_model_dir()
    assert root is not None
    assert (root / "model.safetensors").is_file() and (root / "tokenizer.json").is_file()


def test_matches_the_published_all_minilm_l6_v2_vector(embedder: BertEmbedder) -> None:
    # fastembed's canonical values for sentence-transformers/all-MiniLM-L6-v2 ("hello world",
    # first five dimensions, tests/test_text_onnx_embeddings.py), checked there to 1e-3.
    reference = np.array([-0.034478, 0.03102, 0.00673, 0.02611, -0.039362])
    vector = unit(embedder, "hello world")[0]
    assert vector.shape == (384,)
    assert np.allclose(vector[:5], reference, atol=1e-4)


def test_matches_the_sentence_transformers_quickstart_similarities(embedder: BertEmbedder) -> None:
    # The similarity matrix the sentence-transformers README prints for this model.
    v = unit(
        embedder,
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    )
    similarities = v @ v.T
    expected = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    assert np.allclose(similarities, expected, atol=5e-4)


def test_paraphrases_are_closer_than_unrelated_sentences(embedder: BertEmbedder) -> None:
    v = unit(
        embedder,
        "How do I reset my password?",
        "I forgot my password and need to change it.",
        "Basalt is an igneous rock formed from lava.",
    )
    assert v[0] @ v[1] > 0.6 > 0.2 > v[0] @ v[2]


def test_batch_and_single_results_agree(embedder: BertEmbedder) -> None:
    texts = ("short", "a somewhat longer sentence about granite quarries", "mid length text")
    together = unit(embedder, *texts)
    alone = np.vstack([unit(embedder, t) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_token_counts_exclude_special_tokens(embedder: BertEmbedder) -> None:
    [result] = embedder.embed_sync(EmbeddingRequest(("hello world",)))
    assert result.input_tokens == 2 == embedder.count_tokens("hello world")
    assert embedder.count_tokens("") == 0


def test_long_texts_are_windowed(embedder: BertEmbedder) -> None:
    text = " ".join(f"granite{i % 7} basalt" for i in range(400))
    tokens = embedder.count_tokens(text)
    assert tokens > 3 * 254
    [result] = embedder.embed_sync(EmbeddingRequest((text,)))
    assert result.input_tokens == tokens
    assert np.isfinite(result.vector).all()
    # The head of the text alone (one window) is close to, but not, the whole text's vector.
    head = embedder.embed_sync(EmbeddingRequest((text,), 254, "drop_end"))[0]
    cosine = np.dot(result.vector, head.vector) / (
        np.linalg.norm(result.vector) * np.linalg.norm(head.vector)
    )
    assert 0.9 < cosine < 1.0


def test_truncation(embedder: BertEmbedder) -> None:
    text = "alpha beta gamma delta epsilon"
    with pytest.raises(EmbeddingInputTooLong) as raised:
        embedder.embed_sync(EmbeddingRequest(("ok", text), 3, "error"))
    assert (raised.value.index, raised.value.tokens, raised.value.limit) == (1, 5, 3)
    start = embedder.embed_sync(EmbeddingRequest((text,), 3, "drop_start"))[0]
    end = embedder.embed_sync(EmbeddingRequest((text,), 3, "drop_end"))[0]
    assert start.input_tokens == end.input_tokens == 3
    assert np.allclose(
        start.vector,
        unit(embedder, "gamma delta epsilon")[0] * np.linalg.norm(start.vector),
        atol=1e-5,
    )
    assert np.allclose(
        end.vector, unit(embedder, "alpha beta gamma")[0] * np.linalg.norm(end.vector), atol=1e-5
    )


def test_embed_runs_off_the_event_loop(embedder: BertEmbedder) -> None:
    async def main() -> list[int]:
        results = await asyncio.gather(
            *(embedder.embed(EmbeddingRequest((f"text number {i}",))) for i in range(4))
        )
        return [len(r[0].vector) for r in results]

    assert asyncio.run(main()) == [384] * 4


def test_missing_model_is_reported(tmp_path: Path) -> None:
    engine = BertEmbedder(model_dir=tmp_path)
    with pytest.raises(EngineUnavailable):
        engine.embed_sync(EmbeddingRequest(("x",)))
    assert engine.health().state == "failed"


class _ObservedEmbedder(BertEmbedder):
    """Notes each forward pass's batch, and signals when the first one starts."""

    def __init__(self) -> None:
        super().__init__()
        self.passes: list[int] = []
        self.first_pass = threading.Event()

    def _pool(self, model: Any, batch: Any) -> Any:
        self.passes.append(len(batch))
        self.first_pass.set()
        return super()._pool(model, batch)


async def test_a_small_request_is_not_held_behind_a_large_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression (issue 13 item 11): one large request held the worker thread for all of its
    # batches. Small batches here make the large request many forward passes.
    monkeypatch.setattr(embeddings, "_MAX_BATCH_TOKENS", 64)
    engine = _ObservedEmbedder()
    sentence = "Granite and basalt are igneous rocks; sandstone and shale are sedimentary. "
    large = EmbeddingRequest(tuple(f"{i} {sentence}" for i in range(15)))
    small = EmbeddingRequest(("hello world",))
    finished: list[str] = []
    try:
        large_task = asyncio.create_task(engine.embed(large))
        large_task.add_done_callback(lambda _: finished.append("large"))
        await asyncio.to_thread(engine.first_pass.wait, 60)  # the large one is in progress
        small_task = asyncio.create_task(engine.embed(small))
        small_task.add_done_callback(lambda _: finished.append("small"))
        small_result, large_result = await asyncio.gather(small_task, large_task)
        passes_before_small = engine.passes.index(1) if 1 in engine.passes else None
        print(
            f"forward passes: {len(engine.passes)}; the small request ran as pass "
            f"{passes_before_small}; completion order: {finished}"
        )
        assert finished == ["small", "large"]
        assert len(engine.passes) > 4
        # Interleaving does not change the vectors.
        assert small_result == engine.embed_sync(small)
        assert large_result == engine.embed_sync(large)
    finally:
        await engine.close()
