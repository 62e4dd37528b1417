"""The in-process llama.cpp engine: one GGUF model, one context, generations served in turn.

This module owns loading a GGUF with llama-cpp-python, turning a `GenerationRequest` into prompt
tokens (via `chat_template`), the token loop (prompt evaluation, sampling, incremental UTF-8
decoding, stop sequences), and the hand-off of tokens from the worker thread to asyncio.

Behaviour worth knowing:

- **One generation at a time.** A llama.cpp context is not thread-safe, so generations wait in a
  queue ordered by `GenerationRequest.priority`, then arrival (a FIFO among equals;
  `queue_depth` counts the waiting ones) and run on one dedicated worker thread. Every
  generation starts from an empty KV cache, so its output never depends on what ran before it.
- **Deterministic.** Temperature 0 samples greedily; otherwise the sampler is seeded with the
  request's seed, or `DEFAULT_SEED` when it has none: same prompt + same seed, same output.
- **Defaults** when a sampling knob is `None` are llama.cpp's: temperature 0.8, top-k 40,
  top-p 0.95 (a min-p of 0.05 always applies when sampling).
- **Context window.** A prompt that leaves no room for a single output token raises
  `ContextWindowExceeded` (the class in `base`, re-exported here). Otherwise `max_tokens` is
  capped to the room left in the context (`n_ctx - prompt tokens`), and hitting that cap ends
  with `StopReason.MAX_TOKENS`, as llama.cpp's server does: clients routinely send a generous
  `max_tokens`, and refusing those would be unhelpful.
- **End of turn.** An end-of-generation token (EOS, `<end_of_turn>`, ...) ends the answer
  with `StopReason.END_TURN`, and so does any other control token the model samples, such as
  Gemma's `<start_of_turn>`: the embedded base model never learnt `<end_of_turn>` and instead
  starts the next user turn. Incomplete UTF-8 at the very end of a generation is dropped.
- **Token accounting.** `Finish.output_tokens` counts every token the model sampled, including
  an end-of-turn token and the tokens of a matched stop sequence (both are sampled but not
  shown). A `TokenEvent.token_count` is the number of tokens whose text ends in that event.
- **Aborting.** Closing the iterator returned by `generate` (or cancelling its consumer) stops
  the worker before it evaluates another token; `aclose()` returns once the worker has stopped.
- **Tool calls.** When a request offers tools, the prompt describes them and sampling goes
  through a grammar derived from their JSON schemas (`tool_calls`, `tool_grammar`); the text of
  a call is parsed back into `ToolCallEvent`s and the generation ends with `TOOL_USE`.
- **Structured output.** A request's `response_schema` is described in the system prompt and
  sampling goes through the schema's grammar (`tool_grammar.response_grammar`).
- **Errors** are raised eagerly by `generate()` itself, before any event: `EngineNotReady`
  while loading, `EngineUnavailable` after a failed load or `close()`, `ContextWindowExceeded`,
  and `ChatTemplateError` when the model's template rejects the conversation.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import io
import logging
import math
import os
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import llama_cpp
import numpy
from llama_cpp import _logger as llama_logger

from outcrop.engines.base import (
    ContextWindowExceeded,
    Engine,
    EngineError,
    EngineNotReady,
    EngineUnavailable,
)
from outcrop.engines.chat_template import ChatTemplate, render_prompt, template_for_model
from outcrop.engines.default_model import default_model_path
from outcrop.engines.response_format import schema_prompt_request
from outcrop.engines.scheduling import PriorityTurn
from outcrop.engines.tool_calls import parse_tool_calls, prompt_request
from outcrop.engines.tool_grammar import GrammarSampler, TokenSampler, ToolGrammar, grammar_for
from outcrop.types import (
    EngineHealth,
    Finish,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    StopReason,
    TokenEvent,
)

__all__ = [
    "ContextWindowExceeded",
    "GenerationJob",
    "LlamaCppEngine",
    "LlamaCppStats",
    "TextAssembler",
    "TokenModel",
    "TokenSampler",
    "run_token_loop",
]

logger = logging.getLogger(__name__)

DEFAULT_N_CTX = 4096
DEFAULT_SEED = 0
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_K = 40
DEFAULT_TOP_P = 0.95
MIN_P = 0.05
GRAMMAR_CANDIDATES = 64
"""Most likely tokens checked against a tool-call grammar before a full pass over the vocabulary."""
PROMPT_CHUNK_TOKENS = 128
"""Prompt tokens evaluated per llama.cpp call; an abort is noticed between chunks."""

_LLAMA_RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED means "pick a random seed"


@dataclass(slots=True)
class LlamaCppStats:
    """Running totals of one engine, for metrics and tests."""

    generations: int = 0
    """Generations that reached the model (waited their turn and started)."""
    aborted: int = 0
    """Generations stopped early because their consumer went away."""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    """Tokens sampled, across all generations, aborted ones included."""


class TextAssembler:
    """Turns the byte pieces of sampled tokens into `TokenEvent`s.

    It holds bytes back until they decode as UTF-8 (a character split across tokens is emitted
    whole, never as replacement characters), and holds text back while it could still be the
    start of a stop sequence. When a stop sequence appears, the text before it is released,
    the sequence itself never is, and `stop_sequence` names it.
    """

    def __init__(self, stop_sequences: Sequence[str] = ()) -> None:
        self._stops = tuple(s for s in stop_sequences if s)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._token_ends: list[int] = []  # where each not-yet-counted token's text ends
        self.stop_sequence: str | None = None

    def feed(self, piece: bytes) -> list[TokenEvent]:
        """Add one token's bytes; return the text that can be released now (0 or 1 events)."""
        if self.stop_sequence is not None:
            raise RuntimeError("a stop sequence already ended this text")
        self._pending += self._decoder.decode(piece)
        self._token_ends.append(len(self._pending))
        return self._release(final=False)

    def flush(self) -> list[TokenEvent]:
        """Release all held text (generation ended without a stop sequence).

        Bytes of a character that generation stopped in the middle of are dropped: that
        character was never generated, and a replacement character would be a lie.
        """
        if self.stop_sequence is not None:
            return []
        self._decoder.reset()
        return self._release(final=True)

    def _release(self, *, final: bool) -> list[TokenEvent]:
        match = self._earliest_stop()
        if match is not None:
            index, sequence = match
            self.stop_sequence = sequence
            events = self._emit(index)
            self._pending, self._token_ends = "", []
            return events
        held = 0 if final else self._possible_stop_prefix()
        return self._emit(len(self._pending) - held)

    def _earliest_stop(self) -> tuple[int, str] | None:
        found = [
            (i, order, s)
            for order, s in enumerate(self._stops)
            if (i := self._pending.find(s)) >= 0
        ]
        if not found:
            return None
        index, _, sequence = min(found)
        return index, sequence

    def _possible_stop_prefix(self) -> int:
        """Length of the longest tail of the pending text that begins some stop sequence."""
        longest = 0
        for sequence in self._stops:
            for length in range(min(len(sequence) - 1, len(self._pending)), longest, -1):
                if self._pending.endswith(sequence[:length]):
                    longest = length
                    break
        return longest

    def _emit(self, length: int) -> list[TokenEvent]:
        if length <= 0:
            return []
        text, self._pending = self._pending[:length], self._pending[length:]
        done = sum(1 for end in self._token_ends if end <= length)
        self._token_ends = [end - length for end in self._token_ends[done:]]
        return [TokenEvent(text=text, token_count=done)]


class _Sampler:
    """A llama.cpp sampler chain for one generation (owned by the worker thread)."""

    def __init__(self, ctx: Any, sampling: SamplingParams, first: Any = None) -> None:
        """`first`, when given, is a llama.cpp sampler run before the others (a grammar)."""
        self._ctx = ctx
        self._chain: Any = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )
        if first is not None:
            self._add(first)
        temperature = DEFAULT_TEMPERATURE if sampling.temperature is None else sampling.temperature
        if temperature <= 0:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        top_k = DEFAULT_TOP_K if sampling.top_k is None else sampling.top_k
        top_p = DEFAULT_TOP_P if sampling.top_p is None else sampling.top_p
        seed = (DEFAULT_SEED if sampling.seed is None else sampling.seed) % _LLAMA_RANDOM_SEED
        self._add(llama_cpp.llama_sampler_init_top_k(top_k))
        self._add(llama_cpp.llama_sampler_init_top_p(top_p, 1))
        self._add(llama_cpp.llama_sampler_init_min_p(MIN_P, 1))
        self._add(llama_cpp.llama_sampler_init_temp(temperature))
        self._add(llama_cpp.llama_sampler_init_dist(seed))

    def _add(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)

    @property
    def chain(self) -> Any:
        """The llama.cpp sampler chain (to apply to a candidate list of one's own)."""
        return self._chain

    def sample(self) -> int:
        """Sample (and accept) the next token from the last evaluated position's logits."""
        return int(llama_cpp.llama_sampler_sample(self._chain, self._ctx, -1))

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self._chain)


class _GrammarCheck:
    """Asks a llama.cpp grammar sampler about candidate tokens (see `GrammarSampler`)."""

    def __init__(self, ctx: Any, grammar: Any, free: _Sampler, n_vocab: int) -> None:
        self._ctx = ctx
        self._grammar = grammar
        self._free = free
        self._n_vocab = n_vocab
        self._size = min(GRAMMAR_CANDIDATES, n_vocab)
        self._candidates = (llama_cpp.llama_token_data * self._size)()
        self._array = llama_cpp.llama_token_data_array(
            data=self._candidates, size=1, selected=-1, sorted=False
        )

    def _apply(self, sampler: Any, size: int) -> None:
        self._array.size, self._array.selected, self._array.sorted = size, -1, False
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(self._array))

    def allows(self, token: int) -> bool:
        logits = llama_cpp.llama_get_logits_ith(self._ctx, -1)
        self._candidates[0] = llama_cpp.llama_token_data(token, logits[token], 0.0)
        self._apply(self._grammar, 1)
        return math.isfinite(self._candidates[0].logit)

    def resample(self) -> int | None:
        logits = numpy.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self._ctx, -1), shape=(self._n_vocab,)
        )
        top = numpy.argpartition(logits, -self._size)[-self._size :]
        for index, token in enumerate(top.tolist()):
            self._candidates[index] = llama_cpp.llama_token_data(token, float(logits[token]), 0.0)
        self._apply(self._grammar, self._size)
        admitted = [
            (c.id, c.logit) for c in self._candidates[: self._size] if math.isfinite(c.logit)
        ]
        if not admitted:
            return None
        for index, (token, logit) in enumerate(admitted):
            self._candidates[index] = llama_cpp.llama_token_data(token, logit, 0.0)
        self._apply(self._free.chain, len(admitted))
        return int(self._candidates[self._array.selected].id)

    def accept(self, token: int) -> None:
        llama_cpp.llama_sampler_accept(self._grammar, token)


class _LlamaModel:
    """A loaded GGUF model and its context: the one place llama-cpp-python's `Any` lives.

    Tokenizing and reading token text are safe from any thread; everything that touches the
    context (`eval_*`, samplers, `close`) must run on the engine's worker thread.
    """

    def __init__(self, path: Path, *, n_ctx: int, n_threads: int) -> None:
        # `verbose=False` makes llama-cpp-python point the process's stdout and stderr file
        # descriptors at /dev/null while it loads, which swallows whatever any other thread
        # prints meanwhile (the server's ready line among it). So load with verbose=True and
        # catch its Python-level chatter instead; llama.cpp's own log lines go through the
        # log callback, which `set_verbose(False)` then limits to errors.
        with contextlib.redirect_stderr(io.StringIO()):
            self._llm: Any = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                verbose=True,
            )
        self._llm.verbose = False
        llama_logger.set_verbose(False)
        self._vocab: Any = llama_cpp.llama_model_get_vocab(self._llm.model)
        self.path = path
        self.n_ctx = int(self._llm.n_ctx())
        self.bos_token = int(self._llm.token_bos())
        self.eos_token = int(self._llm.token_eos())
        self.metadata: dict[str, str] = {str(k): str(v) for k, v in self._llm.metadata.items()}

    def token_text(self, token: int) -> str:
        """The vocabulary text of a (special) token, e.g. `<bos>`; "" for token -1."""
        if token < 0:
            return ""
        raw: bytes = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", errors="replace")

    def tokenize(self, text: str) -> list[int]:
        """Prompt tokens, special tokens parsed, starting with exactly one BOS if the model
        wants one (a template that already wrote the BOS text does not get a second)."""
        tokens = [int(t) for t in self._llm.tokenize(text.encode("utf-8"), True, True)]
        if len(tokens) >= 2 and tokens[0] == tokens[1] == self.bos_token:
            del tokens[0]
        return tokens

    def piece(self, token: int) -> bytes:
        """The bytes a generated token stands for (control tokens stand for nothing)."""
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            written = int(
                llama_cpp.llama_token_to_piece(self._vocab, token, buffer, size, 0, False)
            )
            if written >= 0:
                return buffer.raw[:written]
            size = -written

    def ends_generation(self, token: int) -> bool:
        """Whether `token` ends the model's turn: an end-of-generation token (EOS,
        `<end_of_turn>`, EOT, ...) or any other control token, such as Gemma's
        `<start_of_turn>`: a model that opens a new turn has finished its own."""
        return bool(
            llama_cpp.llama_vocab_is_eog(self._vocab, token)
            or llama_cpp.llama_vocab_is_control(self._vocab, token)
        )

    def eval_prompt(self, tokens: Sequence[int], cancelled: threading.Event) -> bool:
        """Clear the KV cache and evaluate `tokens` in chunks; False if cancelled meanwhile."""
        self._llm.reset()
        for start in range(0, len(tokens), PROMPT_CHUNK_TOKENS):
            if cancelled.is_set():
                return False
            self._llm.eval(tokens[start : start + PROMPT_CHUNK_TOKENS])
        return True

    def eval_token(self, token: int) -> None:
        self._llm.eval([token])

    def sampler(self, sampling: SamplingParams, grammar: ToolGrammar | None = None) -> TokenSampler:
        if grammar is None:
            return _Sampler(self._llm.ctx, sampling)
        rules = llama_cpp.llama_sampler_init_grammar(self._vocab, grammar.gbnf.encode(), b"root")
        if not rules:
            raise EngineError("llama.cpp refused the tool-call grammar")
        ctx = self._llm.ctx
        free = _Sampler(ctx, sampling)
        return GrammarSampler(
            free,
            _Sampler(ctx, sampling, rules),  # the chain owns (and frees) the grammar sampler
            _GrammarCheck(ctx, rules, free, int(llama_cpp.llama_vocab_n_tokens(self._vocab))),
            self.piece,
            allows_text=grammar.allows_text,
        )

    def close(self) -> None:
        self._llm.close()


class TokenModel(Protocol):
    """What the token loop needs from a model (`_LlamaModel`; fakes in tests)."""

    def eval_prompt(self, tokens: Sequence[int], cancelled: threading.Event) -> bool: ...
    def eval_token(self, token: int) -> None: ...
    def sampler(
        self, sampling: SamplingParams, grammar: ToolGrammar | None = None
    ) -> TokenSampler: ...
    def piece(self, token: int) -> bytes: ...
    def ends_generation(self, token: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class GenerationJob:
    """One validated generation, as the worker thread runs it."""

    prompt_tokens: list[int]
    sampling: SamplingParams
    output_budget: int
    """max_tokens capped to the room left in the context window."""
    grammar: ToolGrammar | None = None
    """Constrains sampling to tool calls when the request offers tools (`tool_grammar`)."""


class _WorkerDone:
    """Queued after everything a worker emitted, once its thread has returned."""


_WORKER_DONE = _WorkerDone()
_WorkerItem = TokenEvent | Finish | Exception | _WorkerDone
_Emit = Callable[[_WorkerItem], None]


@dataclass(slots=True)
class _Active:
    """The generation running now, so that `close()` can stop it."""

    cancelled: threading.Event = field(default_factory=threading.Event)


class LlamaCppEngine(Engine):
    """Serves one GGUF model in-process with llama.cpp (see the module docstring)."""

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        name: str = "llamacpp",
    ) -> None:
        """`model_path=None` serves the embedded default model (assembled on `start()`)."""
        if n_ctx < 1:
            raise ValueError("n_ctx must be at least 1")
        self.name = name
        self._model_path = None if model_path is None else Path(model_path)
        self._n_ctx = n_ctx
        self._n_threads = n_threads if n_threads is not None else (os.cpu_count() or 1)
        self._state: Literal["loading", "ready", "failed"] = "loading"
        self._detail = "not started"
        self._model: _LlamaModel | None = None
        self._template: ChatTemplate | None = None
        self._closed = False
        self._turn = PriorityTurn()  # by request priority, then arrival order (a FIFO)
        self._waiting = 0
        self._active: _Active | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llamacpp-{name}")
        self.stats = LlamaCppStats()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the model in a thread; health reports `loading` meanwhile, then `ready` or
        `failed` (with the reason in `detail`). Never raises for a model that fails to load."""
        if self._model is not None or self._closed:
            return
        self._state, self._detail = "loading", "loading model"
        try:
            model, template = await asyncio.to_thread(self._load)
        except Exception as exc:
            logger.exception("llama.cpp engine %r failed to load its model", self.name)
            self._state, self._detail = "failed", f"failed to load model: {exc}"
            return
        if self._closed:
            await asyncio.get_running_loop().run_in_executor(self._worker, model.close)
            return
        self._model, self._template = model, template
        self._state, self._detail = "ready", ""

    def _load(self) -> tuple[_LlamaModel, ChatTemplate]:
        # `detail` tells `outcrop serve`'s start-up progress which step is running.
        if self._model_path is None:
            self._detail = "preparing the embedded model (assembled once, on first start)"
        path = self._model_path if self._model_path is not None else default_model_path()
        if not path.is_file():
            raise FileNotFoundError(f"no model file at {path}")
        self._detail = f"loading {path.name}"
        model = _LlamaModel(path, n_ctx=self._n_ctx, n_threads=self._n_threads)
        template = template_for_model(
            model.metadata,
            bos_token=model.token_text(model.bos_token),
            eos_token=model.token_text(model.eos_token),
        )
        return model, template

    async def close(self) -> None:
        """Stop the running generation, refuse new ones and free the model."""
        if self._closed:
            return
        self._closed = True
        model, self._model = self._model, None
        self._state, self._detail = "failed", "engine closed"
        if self._active is not None:
            self._active.cancelled.set()
        if model is not None:
            # Runs after the current generation: the worker has a single thread.
            await asyncio.get_running_loop().run_in_executor(self._worker, model.close)
        self._worker.shutdown(wait=False)

    def health(self) -> EngineHealth:
        extra: dict[str, object] = {
            "model_path": str(self._model.path if self._model else self._model_path or ""),
            "n_ctx": self._model.n_ctx if self._model else self._n_ctx,
            "queue_depth": self._waiting,
            "busy": self._active is not None,
            "generations": self.stats.generations,
            "aborted": self.stats.aborted,
            "generated_tokens": self.stats.generated_tokens,
        }
        return EngineHealth(
            ready=self._state == "ready", state=self._state, detail=self._detail, extra=extra
        )

    @property
    def context_window(self) -> int | None:
        """Tokens the loaded context holds (prompt + output); None until loaded. llama.cpp
        may round the requested `n_ctx` up (to a multiple of 256)."""
        return self._model.n_ctx if self._model is not None else None

    @property
    def queue_depth(self) -> int:
        """Generations waiting for the model (the running one is not counted)."""
        return self._waiting

    # -- requests --------------------------------------------------------------------------

    def count_tokens(self, request: GenerationRequest) -> int:
        """Tokens of the templated prompt (BOS included), exactly what generation evaluates."""
        model, template = self._ready()
        prompt = prompt_request(schema_prompt_request(request))
        return len(model.tokenize(render_prompt(prompt, template)))

    def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        """Validate `request` now (raising before any event), then stream its generation."""
        model, template = self._ready()
        prompt = prompt_request(schema_prompt_request(request))
        prompt_tokens = model.tokenize(render_prompt(prompt, template))
        if not prompt_tokens:  # only possible for a model without BOS and an empty raw prompt
            raise EngineError("the prompt is empty: there is nothing to continue")
        room = model.n_ctx - len(prompt_tokens)
        if room < 1:
            raise ContextWindowExceeded(
                len(prompt_tokens), request.sampling.max_tokens, model.n_ctx
            )
        grammar = grammar_for(request)
        budget = min(request.sampling.max_tokens, room)
        job = GenerationJob(prompt_tokens, request.sampling, budget, grammar)
        stream = self._stream(model, job, request.priority)
        return stream if grammar is None or not grammar.tool_calls else parse_tool_calls(stream)

    def _ready(self) -> tuple[_LlamaModel, ChatTemplate]:
        if self._state == "failed":
            raise EngineUnavailable(f"engine {self.name!r} is unavailable: {self._detail}")
        if self._model is None or self._template is None:
            raise EngineNotReady(f"engine {self.name!r} is still loading its model")
        return self._model, self._template

    async def _stream(
        self, model: _LlamaModel, job: GenerationJob, priority: int = 0
    ) -> AsyncGenerator[GenerationEvent, None]:
        loop = asyncio.get_running_loop()
        self._waiting += 1
        try:
            await self._turn.acquire(priority)
        finally:
            self._waiting -= 1
        events: asyncio.Queue[_WorkerItem] = asyncio.Queue()
        active = _Active()

        def emit(item: _WorkerItem) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                active.cancelled.set()

        try:
            if self._closed:
                raise EngineUnavailable(f"engine {self.name!r} is closed")
            worker = loop.run_in_executor(
                self._worker, self._run_job, model, job, emit, active.cancelled
            )
        except BaseException:
            self._turn.release()
            raise
        self._active = active

        def finished(_: object) -> None:
            # The turn passes on only once the worker thread has really let go of the context.
            self._active = None
            self._turn.release()
            events.put_nowait(_WORKER_DONE)

        worker.add_done_callback(finished)
        try:
            while True:
                item = await events.get()
                if isinstance(item, _WorkerDone):  # stopped without a Finish: by close()
                    raise EngineUnavailable(f"engine {self.name!r} closed during generation")
                if isinstance(item, Exception):
                    raise EngineError(f"llama.cpp failed during generation: {item}") from item
                if isinstance(item, Finish):
                    # Hand the model to the next request before the consumer sees the end, so
                    # that a consumer who stops at Finish without closing holds nothing.
                    await asyncio.wait([worker])
                    yield item
                    return
                yield item
        finally:
            active.cancelled.set()
            await asyncio.wait([worker])

    def _run_job(
        self, model: _LlamaModel, job: GenerationJob, emit: _Emit, cancelled: threading.Event
    ) -> None:
        """The worker thread's body: never raises; failures are emitted as items."""
        self.stats.generations += 1
        self.stats.prompt_tokens += len(job.prompt_tokens)
        try:
            if not run_token_loop(model, job, emit, cancelled, self.stats):
                self.stats.aborted += 1
        except Exception as exc:
            logger.exception("llama.cpp generation failed")
            emit(exc)


def run_token_loop(
    model: TokenModel,
    job: GenerationJob,
    emit: _Emit,
    cancelled: threading.Event,
    stats: LlamaCppStats,
) -> bool:
    """Run one generation on the worker thread; False when it was aborted."""
    if not model.eval_prompt(job.prompt_tokens, cancelled):
        return False
    text = TextAssembler(job.sampling.stop_sequences)
    produced = 0
    reason = StopReason.MAX_TOKENS
    sampler = (
        model.sampler(job.sampling)
        if job.grammar is None
        else model.sampler(job.sampling, job.grammar)
    )
    try:
        while produced < job.output_budget:
            if cancelled.is_set():
                return False
            token = sampler.sample()
            produced += 1
            stats.generated_tokens += 1
            if model.ends_generation(token):
                reason = StopReason.END_TURN
                break
            for event in text.feed(model.piece(token)):
                emit(event)
            if text.stop_sequence is not None:
                reason = StopReason.STOP_SEQUENCE
                break
            if produced < job.output_budget:
                model.eval_token(token)
    finally:
        sampler.close()
    for event in text.flush():
        emit(event)
    emit(
        Finish(
            stop_reason=reason,
            input_tokens=len(job.prompt_tokens),
            output_tokens=produced,
            stop_sequence=text.stop_sequence,
        )
    )
    return True
