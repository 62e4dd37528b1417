"""The managed llama-server engine, against the real child and the embedded models.

Tests marked `llamacpp` start a real `llama-server` (built once into the cache by
`outcrop.engines.llama_build`) with small `max_tokens`. The rest check the pure pieces: the
GGUF header reader, the command line, the build cache key, the embedded model lookup.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from outcrop.engines import llama_build
from outcrop.engines.base import (
    ContextWindowExceeded,
    EngineError,
    EngineNotReady,
    EngineTimeout,
    EngineUnavailable,
)
from outcrop.engines.default_model import (
    DEFAULT_MODEL,
    GEMMA3,
    SMOLLM2,
    embedded_model_path,
    resolve_model,
)
from outcrop.engines.gguf_metadata import GgufError, read_metadata
from outcrop.engines.llama_server import LlamaServerEngine, LlamaServerOptions
from outcrop.invocation.request_options import tier_priority
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    StopReason,
    TokenEvent,
)


def chat(text: str, max_tokens: int = 8, **sampling: object) -> GenerationRequest:
    return GenerationRequest(
        (ChatMessage("user", text),),
        SamplingParams(max_tokens=max_tokens, **sampling),  # type: ignore[arg-type]
    )


async def collect(events: AsyncIterator[GenerationEvent]) -> tuple[str, Finish]:
    texts: list[str] = []
    async for event in events:
        if isinstance(event, Finish):
            return "".join(texts), event
        assert isinstance(event, TokenEvent)
        texts.append(event.text)
    raise AssertionError("the stream ended without a Finish")


async def until(condition: Callable[[], bool]) -> None:
    """Poll `condition` (a bounded wait, not a timing assertion)."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


def child_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its state in /proc says it has exited.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(")")[-1].split()[0] != "Z"


# ----------------------------------------------------------------------------------------------
# Pure pieces


def _gguf(pairs: list[tuple[str, int, bytes]]) -> bytes:
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(pairs))
    for key, kind, value in pairs:
        out += struct.pack("<Q", len(key)) + key.encode() + struct.pack("<I", kind) + value
    return out


def _string(text: str) -> bytes:
    return struct.pack("<Q", len(text.encode())) + text.encode()


def test_gguf_reader_reads_strings_and_scalars_and_skips_arrays(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    tokens = struct.pack("<IQ", 8, 2) + _string("<s>") + _string("a")
    path.write_bytes(
        _gguf(
            [
                ("general.architecture", 8, _string("llama")),
                ("tokenizer.ggml.tokens", 9, tokens),
                ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1)),
                ("tokenizer.ggml.add_bos_token", 7, struct.pack("<?", False)),
            ]
        )
    )
    assert read_metadata(path) == {
        "general.architecture": "llama",
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.add_bos_token": False,
    }


def test_gguf_reader_refuses_other_files(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"this is not a GGUF file")
    with pytest.raises(GgufError):
        read_metadata(path)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 5))
    with pytest.raises(GgufError, match="truncated"):
        read_metadata(path)


def test_the_embedded_models_are_real_ggufs_with_what_the_engine_reads() -> None:
    smol = read_metadata(embedded_model_path(SMOLLM2))
    assert smol["general.architecture"] == "llama"
    assert "tokenizer.chat_template" in smol
    assert resolve_model(None) == embedded_model_path(DEFAULT_MODEL)
    assert resolve_model(Path(GEMMA3)) == embedded_model_path(GEMMA3)
    assert resolve_model(Path("/some/file.gguf")) == Path("/some/file.gguf")


def test_the_command_passes_the_configured_options() -> None:
    options = LlamaServerOptions(
        n_ctx=1024, parallel=3, n_threads=2, n_gpu_layers=99, batch_size=256, ubatch_size=64
    )
    command = options.command(Path("/bin/llama-server"), Path("/m.gguf"), 5000)
    flags = {flag: command[i + 1] for i, flag in enumerate(command[:-1]) if flag.startswith("--")}
    assert flags["--ctx-size"] == "3072"  # per slot x slots
    assert flags["--parallel"] == "3"
    assert flags["--threads"] == flags["--threads-batch"] == "2"
    assert flags["--n-gpu-layers"] == "99"
    assert (flags["--batch-size"], flags["--ubatch-size"]) == ("256", "64")
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "5000"
    default = LlamaServerOptions().command(Path("b"), Path("m"), 1)
    assert "--n-gpu-layers" not in default and default[default.index("--threads") + 1] == "1"


def test_the_build_cache_key_follows_version_and_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OUTCROP_LLAMA_CACHE_DIR", str(tmp_path / "llama.cpp"))
    monkeypatch.delenv("OUTCROP_LLAMA_CMAKE_ARGS", raising=False)
    monkeypatch.delenv("OUTCROP_LLAMA_SERVER", raising=False)
    plain = llama_build.cached_binary()
    assert plain.parent.parent.parent == tmp_path / "llama.cpp"
    assert plain.parent.parent.name.startswith(llama_build.LLAMA_CPP_PYTHON_VERSION)
    assert llama_build.find_binary() is None  # nothing built in this empty cache
    monkeypatch.setenv("OUTCROP_LLAMA_CMAKE_ARGS", "-DGGML_CUDA=ON")
    assert llama_build.cached_binary() != plain
    monkeypatch.setenv("OUTCROP_LLAMA_SERVER", "/opt/llama-server")
    assert llama_build.find_binary() == Path("/opt/llama-server")


# ----------------------------------------------------------------------------------------------
# The real child


@pytest.fixture(scope="module")
def binary() -> Path:
    return llama_build.find_binary() or llama_build.build()


@pytest.fixture
async def engine(binary: Path) -> AsyncIterator[LlamaServerEngine]:
    started = LlamaServerEngine(options=LlamaServerOptions(n_ctx=1024, parallel=2, binary=binary))
    await started.start()
    assert started.health().ready, started.health().detail
    yield started
    await started.close()


@pytest.mark.llamacpp
async def test_health_goes_from_loading_to_ready_and_close_leaves_no_child(binary: Path) -> None:
    engine = LlamaServerEngine(options=LlamaServerOptions(n_ctx=512, parallel=1, binary=binary))
    assert engine.health().state == "loading"
    loading = asyncio.create_task(engine.start())
    await asyncio.sleep(0)
    assert not engine.health().ready
    with pytest.raises(EngineNotReady):
        engine.generate(chat("Hi"))
    with pytest.raises(EngineNotReady):
        engine.count_tokens(chat("Hi"))
    await loading
    assert engine.health().ready, engine.health().detail
    pid = engine.child_pid
    assert pid is not None and child_alive(pid)
    await engine.close()
    assert not child_alive(pid)
    with pytest.raises(EngineUnavailable):
        engine.generate(chat("Hi"))


@pytest.mark.llamacpp
async def test_a_file_that_is_not_gguf_fails_the_engine_clearly(
    tmp_path: Path, binary: Path
) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a GGUF file")
    engine = LlamaServerEngine(bogus, options=LlamaServerOptions(binary=binary))
    await engine.start()
    health = engine.health()
    assert (health.state, health.ready) == ("failed", False)
    assert "not a GGUF file" in health.detail
    with pytest.raises(EngineUnavailable):
        engine.generate(chat("Hi"))
    await engine.close()


@pytest.mark.llamacpp
async def test_a_gguf_that_llama_server_cannot_load_fails_with_its_words(
    tmp_path: Path, binary: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    whole = embedded_model_path(SMOLLM2).read_bytes()
    broken.write_bytes(whole[: len(whole) // 2])  # the header intact, tensor data cut
    engine = LlamaServerEngine(broken, options=LlamaServerOptions(binary=binary))
    await engine.start()
    health = engine.health()
    assert health.state == "failed"
    assert "llama-server exited" in health.detail
    assert engine.child_pid is None
    await engine.close()


async def test_a_binary_that_does_not_exist_fails_the_engine(tmp_path: Path) -> None:
    engine = LlamaServerEngine(options=LlamaServerOptions(binary=tmp_path / "no-such-binary"))
    await engine.start()
    assert engine.health().state == "failed"
    assert "no llama-server binary" in engine.health().detail
    await engine.close()


@pytest.mark.llamacpp
async def test_generates_text_and_reports_exact_usage(engine: LlamaServerEngine) -> None:
    request = chat("Describe granite in one sentence.", max_tokens=12, temperature=0)
    events = [event async for event in engine.generate(request)]
    finish = events[-1]
    tokens = [e for e in events[:-1] if isinstance(e, TokenEvent)]
    assert isinstance(finish, Finish) and len(tokens) == len(events) - 1
    assert "".join(t.text for t in tokens).strip()
    assert finish.input_tokens == engine.count_tokens(request)
    assert 0 < finish.output_tokens <= 12
    assert sum(t.token_count for t in tokens) <= finish.output_tokens
    if finish.stop_reason is StopReason.MAX_TOKENS:
        assert finish.output_tokens == 12


@pytest.mark.llamacpp
async def test_count_tokens_counts_the_templated_prompt(engine: LlamaServerEngine) -> None:
    short, longer = chat("Hi"), chat("Hi, tell me everything about sedimentary rocks, please.")
    assert 0 < engine.count_tokens(short) < engine.count_tokens(longer)
    raw = GenerationRequest(messages=(), sampling=SamplingParams(max_tokens=1), raw_prompt="Hi")
    counted = engine.count_tokens(raw)
    _, finish = await collect(engine.generate(raw))
    assert finish.input_tokens == counted >= 1


@pytest.mark.llamacpp
async def test_same_seed_same_output_and_seeds_matter(engine: LlamaServerEngine) -> None:
    def sampled(seed: int | None) -> GenerationRequest:
        return chat("Write a line about basalt.", max_tokens=12, temperature=1.0, seed=seed)

    first = await collect(engine.generate(sampled(7)))
    assert await collect(engine.generate(sampled(7))) == first
    assert await collect(engine.generate(sampled(None))) == await collect(
        engine.generate(sampled(None))
    )
    others = {(await collect(engine.generate(sampled(seed))))[0] for seed in (1, 2, 3)}
    assert others - {first[0]}, "different seeds should not all give the same text"


@pytest.mark.llamacpp
async def test_stop_sequence_is_honoured_and_not_emitted(engine: LlamaServerEngine) -> None:
    baseline, _ = await collect(engine.generate(chat("Say hello.", max_tokens=12, temperature=0)))
    position = max(1, len(baseline) // 2)
    stop = baseline[position : position + 3]
    expected = baseline[: baseline.find(stop)]
    request = chat("Say hello.", max_tokens=12, temperature=0, stop_sequences=(stop,))
    text, finish = await collect(engine.generate(request))
    assert text == expected
    assert finish.stop_reason is StopReason.STOP_SEQUENCE
    assert finish.stop_sequence == stop


@pytest.mark.llamacpp
async def test_max_tokens_gives_exactly_that_many_output_tokens(engine: LlamaServerEngine) -> None:
    request = chat("Count from one to fifty, in words.", max_tokens=5, temperature=0)
    events = [event async for event in engine.generate(request)]
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.stop_reason, finish.output_tokens) == (StopReason.MAX_TOKENS, 5)
    assert sum(e.token_count for e in events if isinstance(e, TokenEvent)) == 5


async def child_slots(engine: LlamaServerEngine) -> list[dict[str, Any]]:
    """llama-server's own view of its slots (`GET /slots`)."""
    port = engine.health().extra["port"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/slots") as response,
    ):
        slots: list[dict[str, Any]] = await response.json()
        return slots


@pytest.mark.llamacpp
async def test_greedy_free_text_ends_its_turn_instead_of_looping(
    engine: LlamaServerEngine,
) -> None:
    """Greedy decoding alone loops on this prompt ("A gentle rain, a gentle rain, ...") until
    max_tokens; the default repetition penalty (free text only) lets the model end its turn."""
    haiku = chat("Write a haiku about rain.", max_tokens=256, temperature=0)
    text, finish = await collect(engine.generate(haiku))
    assert finish.stop_reason is StopReason.END_TURN, text
    engine.options = dataclasses.replace(engine.options, repeat_penalty=1.0)  # penalty off
    looped, unpenalized = await collect(engine.generate(haiku))
    assert unpenalized.stop_reason is StopReason.MAX_TOKENS, looped


@pytest.mark.llamacpp
async def test_aclose_mid_generation_stops_that_slot(engine: LlamaServerEngine) -> None:
    stream = engine.generate(chat("Tell a very long story about rocks.", max_tokens=600))
    received = [await anext(stream), await anext(stream)]
    assert all(isinstance(e, TokenEvent) for e in received)
    await stream.aclose()
    assert engine.stats.aborted == 1
    for _ in range(300):  # bounded wait for the child to notice the closed connection
        slots = await child_slots(engine)
        if not any(slot["is_processing"] for slot in slots):
            break
        await asyncio.sleep(0.1)
    assert not any(slot["is_processing"] for slot in slots)
    # What the child kept for the abandoned request (its prompt plus what it generated before
    # it noticed the closed connection, less the last sampled token, never evaluated): far
    # fewer than the 600 tokens asked for.
    kept = max(slot.get("n_prompt_tokens", 0) for slot in slots)
    assert engine.stats.prompt_tokens + 1 <= kept < engine.stats.prompt_tokens + 100
    _, finish = await collect(engine.generate(chat("Hi", max_tokens=2)))
    assert finish.output_tokens >= 1


@pytest.mark.llamacpp
async def test_prompt_that_fills_the_context_is_refused(binary: Path) -> None:
    engine = LlamaServerEngine(options=LlamaServerOptions(n_ctx=256, parallel=1, binary=binary))
    await engine.start()
    try:
        assert engine.context_window == 256
        too_long = chat("rock " * 300, max_tokens=4)
        with pytest.raises(ContextWindowExceeded) as info:
            await collect(engine.generate(too_long))
        assert info.value.context_window == 256
        assert info.value.prompt_tokens == engine.count_tokens(too_long) > 256
        room_request = chat("rock " * 200, max_tokens=1000, temperature=0)
        room = 256 - engine.count_tokens(room_request)
        assert 0 < room < 30
        _, finish = await collect(engine.generate(room_request))
        assert finish.output_tokens <= room
        if finish.stop_reason is StopReason.MAX_TOKENS:
            assert finish.output_tokens == room
    finally:
        await engine.close()


@pytest.mark.llamacpp
async def test_the_prefix_cache_is_reused_and_reported(engine: LlamaServerEngine) -> None:
    long = "Granite is an igneous rock made of quartz and feldspar. " * 20

    def marked(question: str) -> GenerationRequest:
        # a cache point after the one user message: the whole conversation so far
        return dataclasses.replace(
            chat(long + question, max_tokens=1, temperature=0), cache_point=1
        )

    _, cold = await collect(engine.generate(marked("What is it?")))
    _, warm = await collect(engine.generate(marked("What is it?")))
    assert cold.cache_read_input_tokens == 0
    assert cold.cache_write_input_tokens is not None and cold.cache_write_input_tokens > 200
    assert warm.cache_read_input_tokens == cold.cache_write_input_tokens
    assert warm.cache_write_input_tokens == 0
    _, partial = await collect(engine.generate(marked("Where is it found?")))
    assert partial.cache_read_input_tokens is not None and partial.cache_write_input_tokens
    assert partial.cache_read_input_tokens > 200
    _, plain = await collect(engine.generate(chat(long + "Why?", max_tokens=1)))
    assert plain.cache_read_input_tokens is None  # no cache point: no Bedrock accounting
    assert engine.stats.cached_prompt_tokens > 400


@pytest.mark.llamacpp
async def test_priority_before_default_before_flex(binary: Path) -> None:
    engine = LlamaServerEngine(options=LlamaServerOptions(n_ctx=512, parallel=1, binary=binary))
    await engine.start()
    finished: list[str] = []

    async def run(name: str, tier: str | None, max_tokens: int = 3) -> None:
        request = dataclasses.replace(
            chat(f"Say {name}.", max_tokens=max_tokens, temperature=0),
            priority=tier_priority(tier),
        )
        async for event in engine.generate(request):
            if isinstance(event, Finish):
                finished.append(name)

    try:
        busy = asyncio.create_task(run("first", None, max_tokens=60))
        await until(lambda: engine.health().extra["busy_slots"] == 1)  # it takes the only slot
        queued = []
        for name, tier in (("flex", "flex"), ("default", "default"), ("priority", "priority")):
            queued.append(asyncio.create_task(run(name, tier)))
            await until(lambda: engine.queue_depth == len(queued))  # tokenized, now waiting
        assert engine.queue_depth == 3
        await asyncio.gather(busy, *queued)
    finally:
        await engine.close()
    assert finished == ["first", "priority", "default", "flex"]


@pytest.mark.llamacpp
async def test_a_child_killed_mid_stream_ends_it_with_an_error_and_is_restarted(
    engine: LlamaServerEngine,
) -> None:
    stream = engine.generate(chat("Tell a very long story about rocks.", max_tokens=400))
    assert isinstance(await anext(stream), TokenEvent)
    pid = engine.child_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(EngineError) as info:
        async for _ in stream:
            pass
    assert not isinstance(info.value, EngineUnavailable | EngineTimeout)  # started: stream error
    assert "exited" in str(info.value)
    for _ in range(600):  # restarted with backoff; not a timing assertion, a bounded wait
        if engine.health().ready and engine.child_pid != pid:
            break
        await asyncio.sleep(0.1)
    assert engine.health().ready, engine.health().detail
    assert engine.child_pid not in (None, pid)
    assert engine.health().extra["restarts"] == 1
    _, finish = await collect(engine.generate(chat("Hi", max_tokens=2)))
    assert finish.output_tokens >= 1


@pytest.mark.llamacpp
async def test_a_hung_child_times_the_stream_out(binary: Path) -> None:
    engine = LlamaServerEngine(
        options=LlamaServerOptions(n_ctx=512, parallel=1, binary=binary, token_timeout_s=10.0)
    )
    await engine.start()
    try:
        stream = engine.generate(chat("Tell a long story.", max_tokens=200))
        assert isinstance(await anext(stream), TokenEvent)
        pid = engine.child_pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(EngineTimeout):
                async for _ in stream:
                    pass
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        await engine.close()
    assert engine.child_pid is not None and not child_alive(engine.child_pid)


@pytest.mark.llamacpp
async def test_a_port_taken_before_the_child_binds_it_is_replaced(
    binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outcrop.engines import llama_server

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy])
        real = llama_server.free_port
        monkeypatch.setattr(llama_server, "free_port", lambda: next(ports, None) or real())
        engine = LlamaServerEngine(options=LlamaServerOptions(n_ctx=512, parallel=1, binary=binary))
        await engine.start()
        try:
            assert engine.health().ready, engine.health().detail
            assert engine.health().extra["port"] != busy
        finally:
            await engine.close()
