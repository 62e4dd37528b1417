"""The default engine: llama.cpp's own HTTP server (`llama-server`) as a supervised child.

`outcrop serve` runs one `llama-server` per llama.cpp engine, the way Ollama and LM Studio run
llama.cpp: continuous batching over parallel slots, a prefix (prompt) cache per slot, grammar-
constrained sampling. This module owns the child's life and the conversation with it.

**The child** (`LlamaServerProcess`) is started from the cached binary (`llama_build`), on
127.0.0.1 and a free port, in its own process group, with `PR_SET_PDEATHSIG` so that it dies
with Outcrop even when Outcrop is killed outright; `close()` (and an `atexit` hook) terminate
the group. Its output goes to Outcrop's log, each line prefixed with ``llama-server[<name>]``.
It is ready when its `/health` answers 200; until then the engine's health is `loading` (and
Outcrop's health endpoint 503). A child that exits before it was ever ready (a GGUF that does
not load, a port taken) fails the engine with the last lines it printed; one that dies after
it was ready is restarted with exponential backoff (`RESTART_BACKOFF_S` up to
`MAX_RESTART_BACKOFF_S`), and the engine is `loading` meanwhile.

**Requests** (`LlamaServerEngine.generate`): the prompt is rendered here (`chat_template`,
from the GGUF's own template) and tokenized by the child's `/tokenize`, so that the token
count is exact before generation (`count_tokens` returns the same number); it is sent as
token ids to the native `/completion` endpoint with `stream`, `cache_prompt` (the slot's KV
cache keeps the longest common prefix of the previous prompt), `return_tokens` (exact token
counts per event), the sampling knobs, `stop` and, when tools are offered or a
`response_schema` asks for structured output, the `grammar` that constrains the answer
(`tool_grammar`). A prompt that leaves no room in a slot's context raises
`ContextWindowExceeded`; `max_tokens` is capped to the room left, ending with `MAX_TOKENS`.

**Prompt caching.** The child reuses every prompt's longest cached prefix, cache point or not
(`stats.cached_prompt_tokens`). A request with a Bedrock cache point
(`GenerationRequest.cache_point`) also gets the Bedrock accounting in its `Finish`: of the
prompt tokens up to the cache point, those the child reused (`timings.cache_n`) are
`cache_read_input_tokens` and the rest, evaluated and now cached, `cache_write_input_tokens`.

**Admission.** llama-server serves its slots first come, first served, so requests pass an
admission queue (`PriorityTurn`, one permit per slot) ordered by `GenerationRequest.priority`
(the Bedrock `serviceTier`) and arrival; `queue_depth` counts the waiting ones.

**Faults.** The child dying mid-stream ends that stream at once with `EngineError` (a
`modelStreamErrorException` on the wire), or `EngineUnavailable` before the first event
(`ServiceUnavailableException`); no token for `token_timeout_s` aborts it with
`EngineTimeout`. Closing the iterator (a client disconnect) closes the HTTP stream to the
child, which stops that slot's generation.

**Repetition.** Free-text generations carry a repetition penalty (`repeat_penalty` 1.1 over the
last `repeat_last_n` 64 tokens, the defaults Ollama and LM Studio give llama.cpp; llama-server's
own default is off): at temperature 0 the small embedded model otherwise falls into loops
("a gentle rain, a gentle rain, ...") and runs to max_tokens on 4 of 20 everyday prompts
(bench/results/default_model.md). Grammar-constrained generations (tool calls, structured
output) get none: their JSON repeats tokens by nature and the grammar already bounds them.

**Determinism.** Temperature 0 is greedy; otherwise the request's seed (or `DEFAULT_SEED`)
seeds the slot's sampler. Batched evaluation can differ from a solo run in the last bits of
the logits, so a sampled (not greedy) answer may differ when other streams run beside it.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import ctypes
import dataclasses
import http.client
import json
import logging
import os
import signal
import socket
import time
import urllib.parse
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp

from outcrop.engines import json_schema_grammar, llama_build
from outcrop.engines.base import (
    ContextWindowExceeded,
    Engine,
    EngineError,
    EngineNotReady,
    EngineTimeout,
    EngineUnavailable,
)
from outcrop.engines.chat_template import ChatTemplate, render_prompt, template_for_model
from outcrop.engines.gguf_metadata import GgufError, read_metadata
from outcrop.engines.openai_compat import SSEDecoder
from outcrop.engines.scheduling import PriorityTurn
from outcrop.engines.tool_calls import parse_tool_calls, tools_in_prompt
from outcrop.engines.tool_grammar import grammar_for
from outcrop.types import (
    EngineHealth,
    Finish,
    GenerationEvent,
    GenerationRequest,
    StopReason,
    TokenEvent,
)

logger = logging.getLogger(__name__)
child_logger = logging.getLogger("outcrop.llama_server.child")

DEFAULT_N_CTX = 4096
"""Tokens of context per slot (prompt + output)."""
DEFAULT_PARALLEL = 4
"""Parallel slots (streams generated together by continuous batching)."""
DEFAULT_THREADS = 1
"""CPU threads: on a shared machine fewer threads than cores win (bench/results/threads.md)."""
DEFAULT_SEED = 0
DEFAULT_TOKEN_TIMEOUT_S = 120.0
"""Longest wait for the next token (or for prompt evaluation) before the stream is aborted."""
READY_TIMEOUT_S = 600.0
"""Longest a child may take to load its model before the engine is failed."""
RESTART_BACKOFF_S = 0.5
MAX_RESTART_BACKOFF_S = 30.0
MIN_P = 0.05
DEFAULT_REPEAT_PENALTY = 1.1
"""Repetition penalty of free-text generations (1.0: none); see the module docstring."""
DEFAULT_REPEAT_LAST_N = 64
"""How many recent tokens the repetition penalty looks back over."""
LOG_TAIL_LINES = 20
PORT_ATTEMPTS = 3
CHILD_EXIT_GRACE_S = 2.0
"""How long a dropped stream waits for the child's exit to be noticed (to say so)."""
_TOKENIZE_CACHE = 64
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class LlamaServerOptions:
    """How the child is started (the engine's config keys, `[engines.NAME]` of type llamacpp)."""

    n_ctx: int = DEFAULT_N_CTX
    """Context tokens per slot; llama-server gets `n_ctx * parallel` in total."""
    parallel: int = DEFAULT_PARALLEL
    n_threads: int | None = None
    """Generation threads; None: `DEFAULT_THREADS`."""
    n_threads_batch: int | None = None
    """Prompt-evaluation threads; None: as `n_threads`."""
    n_gpu_layers: int | None = None
    """Layers offloaded to a GPU (needs a CUDA/Metal build); None: llama-server's default."""
    batch_size: int | None = None
    ubatch_size: int | None = None
    token_timeout_s: float = DEFAULT_TOKEN_TIMEOUT_S
    repeat_penalty: float = DEFAULT_REPEAT_PENALTY
    """Repetition penalty of free-text generations (1.0 turns it off)."""
    repeat_last_n: int = DEFAULT_REPEAT_LAST_N
    binary: Path | None = None
    """The llama-server executable; None: the cached build (built on first start if absent)."""
    extra_args: tuple[str, ...] = ()

    def command(self, binary: Path, model: Path, port: int) -> list[str]:
        threads = self.n_threads or DEFAULT_THREADS
        args = [
            str(binary),
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ctx-size",
            str(self.n_ctx * self.parallel),
            "--parallel",
            str(self.parallel),
            "--threads",
            str(threads),
            "--threads-batch",
            str(self.n_threads_batch or threads),
            "--cont-batching",
            "--no-webui",
            "--jinja",
        ]
        if self.n_gpu_layers is not None:
            args += ["--n-gpu-layers", str(self.n_gpu_layers)]
        if self.batch_size is not None:
            args += ["--batch-size", str(self.batch_size)]
        if self.ubatch_size is not None:
            args += ["--ubatch-size", str(self.ubatch_size)]
        return args + list(self.extra_args)


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent thread dies (Linux only)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_LIVE_GROUPS: set[int] = set()


@atexit.register
def _kill_live_children() -> None:
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


class ChildExited(EngineError):
    """The llama-server child exited (crashed or was killed)."""


class LlamaServerProcess:
    """One supervised llama-server child: start, readiness, log relay, restart, stop."""

    def __init__(
        self,
        name: str,
        command: Callable[[int], list[str]],
        on_state: Callable[[str, str], None],
    ) -> None:
        self.name = name
        self._command = command
        self._on_state = on_state
        self.host = "127.0.0.1"
        self.port = 0
        self.pid: int | None = None
        self.restarts = 0
        self.generation = 0
        """Bumps each time a child starts, so a stream can tell its child has gone."""
        self.died = asyncio.Event()
        self._process: asyncio.subprocess.Process | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start the child and wait for readiness; raise EngineUnavailable if it never is.

        A child that could not bind its port (taken between choosing and binding it) is
        started again on another port, up to `PORT_ATTEMPTS` times."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            await self._spawn()
            try:
                await self._wait_ready()
                break
            except EngineUnavailable:
                await self._kill()
                if attempt == PORT_ATTEMPTS or "bind" not in self.last_lines().lower():
                    await self.stop()
                    raise
            except BaseException:
                await self.stop()
                raise
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def _spawn(self) -> None:
        self.port = free_port()
        command = self._command(self.port)
        logger.info("starting llama-server[%s]: %s", self.name, " ".join(command))
        self._tail.clear()
        self.died = asyncio.Event()
        self.ready.clear()
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._process = process
        self.pid = process.pid
        self.generation += 1
        _LIVE_GROUPS.add(process.pid)
        loop = asyncio.get_running_loop()
        for task in (
            loop.create_task(self._relay(process)),
            loop.create_task(self._watch(process)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _relay(self, process: asyncio.subprocess.Process) -> None:
        """Copy the child's output to the log, line by line, until it closes (read in chunks,
        so that no line is too long and the pipe never fills up and blocks the child)."""
        assert process.stdout is not None
        pending = b""
        while chunk := await process.stdout.read(1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._log_line(line)
            if len(pending) > 1 << 16:
                self._log_line(pending)
                pending = b""
        self._log_line(pending)

    def _log_line(self, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").rstrip()
        if text:
            self._tail.append(text)
            child_logger.info("llama-server[%s] %s", self.name, text)

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        _LIVE_GROUPS.discard(process.pid)
        if process is self._process:
            self.died.set()
            self.ready.clear()
            if not self._closing:
                logger.warning("llama-server[%s] exited with code %s", self.name, code)

    def last_lines(self) -> str:
        return " | ".join(list(self._tail)[-5:])

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if self.died.is_set():
                    code = self._process.returncode if self._process else None
                    raise EngineUnavailable(
                        f"llama-server exited with code {code} while starting: {self.last_lines()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(f"{self.base_url}/health") as response:
                        if response.status == 200:
                            self.ready.set()
                            return
                if time.monotonic() > deadline:
                    raise EngineUnavailable(
                        f"llama-server did not become ready in {READY_TIMEOUT_S:g} s"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.died.wait(), 0.2)

    async def _supervise(self) -> None:
        """Restart the child with backoff whenever it dies, until `stop()`."""
        backoff = RESTART_BACKOFF_S
        while not self._closing:
            await self.died.wait()
            if self._closing:
                return
            self._on_state("loading", f"llama-server exited; restarting in {backoff:g} s")
            await asyncio.sleep(backoff)
            if self._closing:
                return
            try:
                await self._spawn()
                await self._wait_ready()
            except (EngineUnavailable, OSError) as exc:
                logger.warning("llama-server[%s] restart failed: %s", self.name, exc)
                await self._kill()
                backoff = min(backoff * 2, MAX_RESTART_BACKOFF_S)
                self.died.set()
                continue
            self.restarts += 1
            backoff = RESTART_BACKOFF_S
            self._on_state("ready", "")

    async def _kill(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        _LIVE_GROUPS.discard(process.pid)

    async def stop(self) -> None:
        """Terminate the child's process group (SIGTERM, then SIGKILL after 5 s)."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await self._kill()


# A llama.cpp server Outcrop does not start: an `upstreams` entry of a `llamacpp` engine
# (docs/engine-pools.md). It stands where the managed child (`LlamaServerProcess`)
# would: the engine talks to it the same way (`/tokenize`, `/completion` with token ids, the
# prompt cache, grammars), and reads the chat template, BOS token and context size from its
# `/props` and `/tokenize` instead of the GGUF file, which need not be on this machine. Nothing
# restarts it; while it is down, requests fail over to the pool's other upstreams.


class ExternalLlamaServer(LlamaServerProcess):
    """A running llama-server at `url` (e.g. `http://gpu-1:8080`), ready once `/health` is 200."""

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name, lambda port: [], lambda state, detail: None)
        parsed = urllib.parse.urlsplit(url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._url = url.rstrip("/")

    @property
    def base_url(self) -> str:
        return self._url

    async def start(self) -> None:
        """Wait until the server answers `/health` (however long it takes)."""
        while not self._closing:
            try:
                await self._wait_ready()
                return
            except EngineUnavailable:
                continue

    async def stop(self) -> None:
        self._closing = True


async def props_metadata(
    session: aiohttp.ClientSession, base_url: str
) -> dict[str, str | int | float | bool]:
    """The GGUF metadata the engine needs, as the server reports it: the chat template (from
    `/props`) and the BOS token id (what `/tokenize` of an empty text with specials gives)."""
    async with session.get(f"{base_url}/props") as response:
        props = await response.json()
    async with session.post(
        f"{base_url}/tokenize", json={"content": "", "add_special": True}
    ) as response:
        tokens = (await response.json()).get("tokens") or []
    metadata: dict[str, str | int | float | bool] = {}
    template = props.get("chat_template")
    if isinstance(template, str) and template:
        metadata["tokenizer.chat_template"] = template
    if tokens and isinstance(tokens[0], int):
        metadata["tokenizer.ggml.bos_token_id"] = tokens[0]
        metadata["tokenizer.ggml.add_bos_token"] = True
    else:
        metadata["tokenizer.ggml.add_bos_token"] = False
    return metadata


def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel a helper task no one will await, and retrieve how it ended: a read pending when
    a stream is closed early fails with the connection's error ("Task exception was never
    retrieved" otherwise); a post that answered meanwhile has its response closed."""
    task.cancel()
    task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if task.cancelled() or task.exception() is not None:
        return
    result = task.result()
    if isinstance(result, aiohttp.ClientResponse):
        result.close()


@dataclass(slots=True)
class LlamaServerStats:
    """Running totals, for health and tests."""

    generations: int = 0
    aborted: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0
    child_failures: int = 0


@dataclass(slots=True)
class _ModelInfo:
    template: ChatTemplate
    n_ctx: int
    slots: int
    bos_token_id: int | None
    tokenized: collections.OrderedDict[str, list[int]] = field(
        default_factory=collections.OrderedDict
    )


class LlamaServerEngine(Engine):
    """Serves one GGUF model through a supervised llama-server (see the module docstring)."""

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        options: LlamaServerOptions | None = None,
        name: str = "llamacpp",
        model_resolver: Callable[[], Path] | None = None,
        external_url: str | None = None,
    ) -> None:
        """`model_path=None` serves the embedded default model (`model_resolver`);
        `external_url`: talk to a llama-server running there instead of starting a child."""
        self.name = name
        self.options = options or LlamaServerOptions()
        if self.options.n_ctx < 1 or self.options.parallel < 1:
            raise ValueError("n_ctx and parallel must be at least 1")
        self._model_path = None if model_path is None else Path(model_path)
        self._external_url = external_url
        self._resolver = model_resolver
        self._state: Literal["loading", "ready", "failed"] = "loading"
        self._detail = "not started"
        self._process: LlamaServerProcess | None = None
        self._info: _ModelInfo | None = None
        self._session: aiohttp.ClientSession | None = None
        self._admission = PriorityTurn(self.options.parallel)
        self._waiting = 0
        self._closed = False
        self.stats = LlamaServerStats()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the child; health is `loading` meanwhile, then `ready` or `failed` (never
        raises for a model or binary that fails)."""
        if self._process is not None or self._closed:
            return
        try:
            await self._start()
        except Exception as exc:
            if not isinstance(exc, EngineError | FileNotFoundError | GgufError):
                logger.exception("llama-server engine %r failed to start", self.name)
            self._state, self._detail = "failed", f"failed to start: {exc}"
            if self._process is not None:
                await self._process.stop()
                self._process = None

    async def _start(self) -> None:
        if self._external_url is not None:
            await self._start_external(self._external_url)
            return
        self._state, self._detail = "loading", "locating the model"
        path = await asyncio.to_thread(self._resolve_model)
        if not path.is_file():
            raise FileNotFoundError(f"no model file at {path}")
        metadata = await asyncio.to_thread(read_metadata, path)
        binary = self.options.binary or llama_build.find_binary()
        if binary is None:
            self._detail = "building llama-server (once; see the log for progress)"
            binary = await asyncio.to_thread(llama_build.build)
        if not binary.is_file():
            raise EngineUnavailable(f"no llama-server binary at {binary}")
        await asyncio.to_thread(json_schema_grammar.preload)
        self._detail = f"loading {path.name} in llama-server"
        process = LlamaServerProcess(
            self.name,
            lambda port: self.options.command(binary, path, port),
            self._set_state,
        )
        self._process = process
        await process.start()
        if self._closed:
            await process.stop()
            return
        # A fresh loopback connection per request: llama-server closes idle keep-alive
        # connections, and reusing one it has closed fails with "Server disconnected".
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        self._info = await self._model_info(metadata)
        self._state, self._detail = "ready", ""

    async def _start_external(self, url: str) -> None:
        self._state, self._detail = "loading", f"waiting for llama-server at {url}"
        process = ExternalLlamaServer(self.name, url)
        self._process = process
        await process.start()
        if self._closed:
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        self._info = await self._model_info(await props_metadata(self._session, url))
        self._state, self._detail = "ready", ""

    def _resolve_model(self) -> Path:
        if self._resolver is not None and self._model_path is None:
            return self._resolver()
        from outcrop.engines.default_model import resolve_model

        self._detail = "preparing the model"
        return resolve_model(self._model_path)

    async def _model_info(self, metadata: dict[str, str | int | float | bool]) -> _ModelInfo:
        props = await self._get_json("/props")
        settings = props.get("default_generation_settings") or {}
        n_ctx = int(settings.get("n_ctx") or self.options.n_ctx)
        template = template_for_model(
            {k: str(v) for k, v in metadata.items()},
            bos_token=str(props.get("bos_token") or ""),
            eos_token=str(props.get("eos_token") or ""),
        )
        bos = metadata.get("tokenizer.ggml.bos_token_id")
        add_bos = metadata.get("tokenizer.ggml.add_bos_token", True)
        return _ModelInfo(
            template=template,
            n_ctx=n_ctx,
            slots=int(props.get("total_slots") or self.options.parallel),
            bos_token_id=int(bos) if isinstance(bos, int) and add_bos else None,
        )

    def _set_state(self, state: str, detail: str) -> None:
        if self._closed or self._state == "failed":
            return
        if state == "ready":
            self._state, self._detail = "ready", ""
        else:
            self._state, self._detail = "loading", detail
            self.stats.child_failures += 1

    async def close(self) -> None:
        """Stop the child (no orphan) and refuse new generations."""
        if self._closed:
            return
        self._closed = True
        self._state, self._detail = "failed", "engine closed"
        if self._process is not None:
            await self._process.stop()
        if self._session is not None:
            await self._session.close()

    async def probe(self, timeout_s: float) -> str | None:
        """One active health check (an engine pool's): None when the child answers
        `/health` with 200, else what is wrong."""
        if self._state != "ready" or self._process is None or self._session is None:
            return self._detail or self._state
        try:
            timeout = aiohttp.ClientTimeout(total=timeout_s)
            async with self._session.get(self._url("/health"), timeout=timeout) as response:
                if response.status != 200:
                    return f"llama-server /health answered HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"llama-server unreachable: {exc or type(exc).__name__}"
        return None

    def health(self) -> EngineHealth:
        process = self._process
        extra: dict[str, object] = {
            "model_path": str(self._model_path or ""),
            "n_ctx": self._info.n_ctx if self._info else self.options.n_ctx,
            "slots": self.options.parallel,
            "queue_depth": self._waiting,
            "busy_slots": self._admission.held,
            "pid": process.pid if process else None,
            "port": process.port if process else None,
            "restarts": process.restarts if process else 0,
            "generations": self.stats.generations,
            "aborted": self.stats.aborted,
            "generated_tokens": self.stats.generated_tokens,
            "cached_prompt_tokens": self.stats.cached_prompt_tokens,
        }
        return EngineHealth(
            ready=self._state == "ready", state=self._state, detail=self._detail, extra=extra
        )

    @property
    def context_window(self) -> int | None:
        """Tokens one slot holds (prompt + output); None until started."""
        return self._info.n_ctx if self._info is not None else None

    @property
    def queue_depth(self) -> int:
        return self._waiting

    @property
    def child_pid(self) -> int | None:
        """The running child's process id (tests kill it to check recovery)."""
        return self._process.pid if self._process is not None else None

    # -- talking to the child ----------------------------------------------------------------

    def _ready(self) -> tuple[LlamaServerProcess, _ModelInfo, aiohttp.ClientSession]:
        if self._state == "failed":
            raise EngineUnavailable(f"engine {self.name!r} is unavailable: {self._detail}")
        if (
            self._state != "ready"
            or self._process is None
            or self._info is None
            or self._session is None
        ):
            raise EngineNotReady(f"engine {self.name!r} is not ready: {self._detail}")
        return self._process, self._info, self._session

    def _url(self, path: str) -> str:
        """`path` on the current child (its port changes when it is restarted)."""
        assert self._process is not None
        return f"{self._process.base_url}{path}"

    async def _get_json(self, path: str) -> dict[str, Any]:
        assert self._session is not None
        async with self._session.get(self._url(path)) as response:
            body: dict[str, Any] = await response.json()
            return body

    def _tokens_from(self, info: _ModelInfo, tokens: list[int]) -> list[int]:
        # A template that wrote the BOS text itself must not get a second BOS.
        if (
            info.bos_token_id is not None
            and len(tokens) >= 2
            and tokens[0] == tokens[1] == info.bos_token_id
        ):
            del tokens[0]
        return tokens

    def _remember(self, info: _ModelInfo, text: str, tokens: list[int]) -> list[int]:
        info.tokenized[text] = tokens
        info.tokenized.move_to_end(text)
        while len(info.tokenized) > _TOKENIZE_CACHE:
            info.tokenized.popitem(last=False)
        return tokens

    def _tokenize_body(self, text: str) -> bytes:
        return json.dumps({"content": text, "add_special": True, "parse_special": True}).encode()

    def count_tokens(self, request: GenerationRequest) -> int:
        """Tokens of the templated prompt (BOS included): exactly what generation evaluates.

        Synchronous (the Engine interface): one loopback request to the child's `/tokenize`.
        """
        process, info, _ = self._ready()
        text = render_prompt(tools_in_prompt(request), info.template)
        cached = info.tokenized.get(text)
        if cached is not None:
            return len(cached)
        connection = http.client.HTTPConnection(process.host, process.port, timeout=30)
        try:
            connection.request(
                "POST",
                "/tokenize",
                self._tokenize_body(text),
                {"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            body = json.loads(response.read())
        except (OSError, ValueError) as exc:
            raise EngineUnavailable(f"llama-server did not tokenize the prompt: {exc}") from exc
        finally:
            connection.close()
        tokens = self._tokens_from(info, [int(t) for t in body.get("tokens", [])])
        return len(self._remember(info, text, tokens))

    async def _tokenize(
        self, info: _ModelInfo, session: aiohttp.ClientSession, text: str
    ) -> list[int]:
        cached = info.tokenized.get(text)
        if cached is not None:
            return cached
        try:
            async with session.post(
                self._url("/tokenize"),
                data=self._tokenize_body(text),
                headers={"Content-Type": "application/json"},
            ) as response:
                body = await response.json()
        except (aiohttp.ClientError, ValueError) as exc:
            raise EngineUnavailable(f"llama-server did not tokenize the prompt: {exc}") from exc
        tokens = self._tokens_from(info, [int(t) for t in body.get("tokens", [])])
        return self._remember(info, text, tokens)

    # -- generation ----------------------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        """Check readiness now (raising before any event), then stream the generation."""
        _, info, _ = self._ready()
        template_text = render_prompt(tools_in_prompt(request), info.template)
        grammar = grammar_for(request)
        stream = self._stream(request, template_text, None if grammar is None else grammar.gbnf)
        return stream if grammar is None or not grammar.tool_calls else parse_tool_calls(stream)

    def _body(self, request: GenerationRequest, tokens: list[int], budget: int) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "prompt": tokens,
            "n_predict": budget,
            "stream": True,
            "cache_prompt": True,
            "return_tokens": True,
            "stop": [s for s in sampling.stop_sequences if s],
            "seed": DEFAULT_SEED if sampling.seed is None else sampling.seed,
            "min_p": MIN_P,
        }
        if sampling.temperature is not None:
            body["temperature"] = sampling.temperature
        if sampling.top_k is not None:
            body["top_k"] = sampling.top_k
        if sampling.top_p is not None:
            body["top_p"] = sampling.top_p
        return body

    async def _stream(
        self, request: GenerationRequest, text: str, grammar: str | None
    ) -> AsyncGenerator[GenerationEvent, None]:
        # Tokenizing needs no slot: done before admission, so a freed slot goes straight to a
        # request whose body is ready (and a prompt too long is refused without waiting).
        _, info, session = self._ready()
        tokens = await self._tokenize(info, session, text)
        if not tokens:
            raise EngineError("the prompt is empty: there is nothing to continue")
        room = info.n_ctx - len(tokens)
        if room < 1:
            raise ContextWindowExceeded(len(tokens), request.sampling.max_tokens, info.n_ctx)
        cache_point = await self._cache_point(info, session, request, tokens)
        body = self._body(request, tokens, min(request.sampling.max_tokens, room))
        if grammar is not None:
            body["grammar"] = grammar
        else:  # free text: no loops (see the module docstring)
            body["repeat_penalty"] = self.options.repeat_penalty
            body["repeat_last_n"] = self.options.repeat_last_n
        self._waiting += 1
        try:
            await self._admission.acquire(request.priority)
        finally:
            self._waiting -= 1
        try:
            process, _, session = self._ready()
            self.stats.generations += 1
            self.stats.prompt_tokens += len(tokens)
            completion = self._completion(process, session, body, len(tokens), cache_point)
            async with contextlib.aclosing(completion) as events:  # closed at once on abort
                async for event in events:
                    yield event
        finally:
            self._admission.release()

    async def _completion(
        self,
        process: LlamaServerProcess,
        session: aiohttp.ClientSession,
        body: dict[str, Any],
        prompt_tokens: int,
        cache_point: int | None = None,
    ) -> AsyncGenerator[GenerationEvent, None]:
        started = False
        finished = False
        died = process.died
        timeout = self.options.token_timeout_s
        try:
            response = await self._post(session, body, died)
        except ChildExited as exc:
            raise EngineUnavailable(str(exc)) from None
        try:
            if response.status != 200:
                raise self._http_error(response.status, await response.text(), prompt_tokens)
            decoder = SSEDecoder()
            held = 0  # tokens whose text the child holds back (an incomplete UTF-8 character)
            while True:
                chunk = await self._next_chunk(response, died, timeout, started)
                if chunk is None:  # the connection dropped: most likely the child died
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(died.wait(), CHILD_EXIT_GRACE_S)
                    if self._process is not process or died.is_set():
                        raise self._died(started)
                    raise EngineError("llama-server ended the stream without a final event")
                for payload in decoder.feed(chunk):
                    data = json.loads(payload)
                    if "error" in data:
                        raise EngineError(f"llama-server: {data['error']}")
                    count = len(data.get("tokens") or ())
                    self.stats.generated_tokens += count
                    content = str(data.get("content") or "")
                    if not content:
                        held += count
                    if data.get("stop"):
                        if content:
                            yield TokenEvent(text=content, token_count=held + count)
                        finished = True
                        yield self._finish(data, prompt_tokens, cache_point)
                        return
                    if content:
                        started = True
                        yield TokenEvent(text=content, token_count=held + count)
                        held = 0
        finally:
            if not finished:
                self.stats.aborted += 1
            response.close()  # a client that left: the child stops that slot's generation

    async def _post(
        self, session: aiohttp.ClientSession, body: dict[str, Any], died: asyncio.Event
    ) -> aiohttp.ClientResponse:
        post = asyncio.ensure_future(session.post(self._url("/completion"), json=body))
        dead = asyncio.ensure_future(died.wait())
        try:
            done, _ = await asyncio.wait({post, dead}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (the client left): no one will await the post
            _abandon(post)
            raise
        finally:
            dead.cancel()
        if post in done:
            try:
                return post.result()
            except aiohttp.ClientError as exc:
                raise ChildExited(f"llama-server cannot be reached: {exc}") from exc
        post.cancel()
        raise ChildExited("llama-server exited before answering")

    async def _next_chunk(
        self,
        response: aiohttp.ClientResponse,
        died: asyncio.Event,
        wait_s: float,
        started: bool,
    ) -> bytes | None:
        read = asyncio.ensure_future(response.content.readany())
        dead = asyncio.ensure_future(died.wait())
        try:
            done, _ = await asyncio.wait(
                {read, dead}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:  # cancelled (the client left): the stream's close ends the read
            _abandon(read)
            raise
        finally:
            dead.cancel()
        if read in done:
            try:
                data = read.result()
            except aiohttp.ClientError:
                return None
            return data or None
        read.cancel()
        if dead in done:
            raise self._died(started)
        raise EngineTimeout(f"llama-server produced no token for {wait_s:g} s")

    def _died(self, started: bool) -> EngineError:
        process = self._process
        lines = process.last_lines() if process is not None else ""
        message = f"llama-server exited during generation; restarting it. {lines}".strip()
        return EngineError(message) if started else EngineUnavailable(message)

    def _http_error(self, status: int, text: str, prompt_tokens: int) -> EngineError:
        try:
            error = json.loads(text).get("error", {})
            message = str(error.get("message", text))
            kind = str(error.get("type", ""))
        except (ValueError, AttributeError):
            message, kind = text, ""
        if kind == "exceed_context_size_error" and self._info is not None:
            return ContextWindowExceeded(prompt_tokens, 0, self._info.n_ctx)
        if status == 503:
            return EngineNotReady(f"llama-server is busy or loading: {message}")
        return EngineError(f"llama-server answered {status}: {message}")

    async def _cache_point(
        self,
        info: _ModelInfo,
        session: aiohttp.ClientSession,
        request: GenerationRequest,
        tokens: list[int],
    ) -> int | None:
        """Prompt tokens up to the request's cache point: the common prefix of the prompt and
        of the prompt rendered for the conversation up to the cache point."""
        if request.cache_point is None or request.raw_prompt is not None:
            return None
        system = tuple(m for m in request.messages if m.role == "system")
        turns = tuple(m for m in request.messages if m.role != "system")
        prefix = dataclasses.replace(request, messages=system + turns[: request.cache_point])
        try:
            text = render_prompt(tools_in_prompt(prefix), info.template)
        except EngineError:  # a template that refuses the partial conversation
            return 0
        prefix_tokens = await self._tokenize(info, session, text)
        common = 0
        for ours, theirs in zip(tokens, prefix_tokens, strict=False):
            if ours != theirs:
                break
            common += 1
        return common

    def _finish(
        self, data: dict[str, Any], prompt_tokens: int, cache_point: int | None = None
    ) -> Finish:
        kind = data.get("stop_type")
        word = data.get("stopping_word") or None
        if kind == "word" and word:
            reason, stop_sequence = StopReason.STOP_SEQUENCE, str(word)
        elif kind == "eos":
            reason, stop_sequence = StopReason.END_TURN, None
        else:
            reason, stop_sequence = StopReason.MAX_TOKENS, None
        # `timings.cache_n`: the prompt tokens taken from the slot's cache for this request,
        # i.e. not evaluated again (`tokens_cached` also counts the generated tokens).
        timings = data.get("timings") or {}
        reused = min(int(timings.get("cache_n", 0) or 0), prompt_tokens)
        if reused == prompt_tokens - 1:
            # llama-server evaluates at least the prompt's last token again (it needs its
            # logits), even when the whole prompt is cached: that is a full cache hit.
            reused = prompt_tokens
        output = int(data.get("tokens_predicted") or 0)
        self.stats.cached_prompt_tokens += reused
        read = write = None
        if cache_point is not None:
            read = min(reused, cache_point)
            write = cache_point - read
        return Finish(
            stop_reason=reason,
            input_tokens=prompt_tokens,
            output_tokens=output,
            stop_sequence=stop_sequence,
            cache_read_input_tokens=read,
            cache_write_input_tokens=write,
        )
