"""The OpenAI-compatible upstream engine: serves models from any server that speaks the OpenAI
Chat Completions API (vLLM, SGLang, TGI, Ollama, llama.cpp server, llama-cpp-python).

This module owns three things, the first two sans-IO:

- `SSEDecoder`: bytes of a `text/event-stream` body in, the `data:` payloads of its events out.
- `ChunkMapper`: the JSON chunks of a streamed chat (or legacy text) completion in, neutral
  `TokenEvent`s / `ToolCallEvent`s and one closing `Finish` out (usage from the upstream's final
  `include_usage` chunk when it sends one, otherwise counted here).
- `OpenAICompatEngine`: the I/O around them with aiohttp: `POST {upstream}/chat/completions`
  (`/completions` for raw prompts) with `stream: true`, readiness from `GET {upstream}/models`,
  and HTTP/connection failures mapped to the engine errors of `engines.base`. An answer that
  ends without a `finish_reason` (cut, dropped, or `[DONE]` without one) is a failure, never a
  normal finish: `EngineUnavailable` before the first event, `UpstreamStreamError` after it.
  `probe` is one readiness check (an engine pool's health check, `engines/pool.py`), and the
  prompt tokens the upstream reports as cached are totalled in `cache` (health).

Token counting (`count_tokens`, and usage when the upstream reports none) is an approximation:
the OpenAI API has no standard tokenize endpoint, so prompts are counted with the scripted
engine's word-piece tokenizer over a `role: text` rendering, and output as one token per
streamed content delta (what vLLM, llama.cpp and Ollama send).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from outcrop.engines.base import (
    Engine,
    EngineError,
    EngineNotReady,
    EngineRequestError,
    EngineTimeout,
    EngineUnavailable,
)
from outcrop.engines.scripted import prompt_text, tokenize
from outcrop.types import (
    EngineHealth,
    Finish,
    GenerationEvent,
    GenerationRequest,
    StopReason,
    TokenEvent,
    ToolCallEvent,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
"""How often `start` asks the upstream for its models until it first answers."""
MONITOR_SECONDS = 5.0
"""How often readiness is re-checked once the upstream has answered."""


# --- SSE --------------------------------------------------------------------------------------


class SSEDecoder:
    """Incremental `text/event-stream` decoder yielding each event's data (sans-IO).

    Follows the WHATWG rules the OpenAI-compatible servers rely on: lines end in LF, CRLF or
    CR; `data:` lines of one event are joined with LF; a blank line dispatches; comments
    (`:`) and other fields are ignored.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer += chunk
        events: list[str] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return events
            end, after = cut
            line = self._buffer[:end].decode("utf-8")
            self._buffer = self._buffer[after:]
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
                continue
            name, _, value = line.partition(":")
            if name == "data":
                self._data.append(value[1:] if value.startswith(" ") else value)

    def close(self) -> list[str]:
        """Events left when the body ends without a final blank line."""
        events = self.feed(b"\n\n") if self._buffer or self._data else []
        return events


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """(end of the first line, start of the next) or None while the line is incomplete."""
    for index, byte in enumerate(buffer):
        if byte == 0x0A:
            return index, index + 1
        if byte == 0x0D:
            if index + 1 == len(buffer):
                return None  # a CR at the end may be the first half of CRLF
            return index, index + (2 if buffer[index + 1] == 0x0A else 1)
    return None


# --- chunks → neutral events ------------------------------------------------------------------

_FINISH_REASONS = {
    "stop": StopReason.END_TURN,
    "eos": StopReason.END_TURN,
    "length": StopReason.MAX_TOKENS,
    "tool_calls": StopReason.TOOL_USE,
    "function_call": StopReason.TOOL_USE,
}


class UpstreamStreamError(EngineError):
    """The upstream reported an error inside its event stream."""


@dataclass
class _Call:
    call_id: str
    name: str = ""
    announced: bool = False
    pending: list[str] = field(default_factory=list)


@dataclass
class ChunkMapper:
    """Maps streamed completion chunks to neutral events (sans-IO).

    `stop_sequences` are the request's: a finish of `stop` carrying one of them in vLLM's
    `stop_reason` field (or `stop_sequence`) becomes `STOP_SEQUENCE`. `input_tokens` is the
    fallback prompt count used when the upstream sends no usage.
    """

    stop_sequences: tuple[str, ...] = ()
    input_tokens: int = 0
    finish_reason: str | None = None
    matched: str | None = None
    usage: tuple[int, int] | None = None
    cached_tokens: int | None = None
    """Prompt tokens the upstream took from its prefix cache (`usage.prompt_tokens_details.
    cached_tokens`: vLLM, SGLang, llama.cpp and OpenAI report it), when it says."""
    produced: int = 0
    done: bool = False
    _calls: dict[int, _Call] = field(default_factory=dict)

    def feed(self, data: str) -> list[GenerationEvent]:
        """Events for one SSE data payload (`[DONE]` ends the stream)."""
        if data.strip() == "[DONE]":
            self.done = True
            return []
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise UpstreamStreamError(f"upstream sent a malformed event: {data[:200]!r}") from exc
        if not isinstance(chunk, dict):
            raise UpstreamStreamError(f"upstream sent a malformed event: {data[:200]!r}")
        if "error" in chunk:
            raise UpstreamStreamError(f"upstream error: {_error_text(chunk['error'])}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                self.usage = (prompt, completion)
            details = usage.get("prompt_tokens_details")
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            if isinstance(cached, int):
                self.cached_tokens = cached
        events: list[GenerationEvent] = []
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                events += self._choice(choice)
        return events

    def _choice(self, choice: dict[str, Any]) -> list[GenerationEvent]:
        events: list[GenerationEvent] = []
        delta = choice.get("delta")
        if not isinstance(delta, dict):  # legacy /completions chunks carry `text`
            delta = {"content": choice.get("text")}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            self.produced += 1
            events.append(TokenEvent(reasoning, kind="reasoning"))
        content = delta.get("content")
        if isinstance(content, str) and content:
            self.produced += 1
            events.append(TokenEvent(content))
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                events += self._tool_call(call)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
            for key in ("stop_reason", "stop_sequence"):
                value = choice.get(key)
                if isinstance(value, str) and value in self.stop_sequences:
                    self.matched = value
        return events

    def _tool_call(self, fragment: dict[str, Any]) -> list[GenerationEvent]:
        index = fragment.get("index", len(self._calls))
        index = index if isinstance(index, int) else len(self._calls)
        call = self._calls.get(index)
        if call is None:
            upstream_id = fragment.get("id")
            call_id = upstream_id if isinstance(upstream_id, str) and upstream_id else None
            call = self._calls[index] = _Call(call_id or f"call_{index}")
        function = fragment.get("function") or {}
        name = function.get("name") if isinstance(function, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if isinstance(name, str) and name and not call.announced:
            call.name += name
        if isinstance(arguments, str) and arguments:
            call.pending.append(arguments)
        if not call.name:
            return []  # arguments before the name: hold them until the name arrives
        events: list[GenerationEvent] = []
        if not call.announced:
            call.announced = True
            events.append(ToolCallEvent(call.call_id, call.name, "", 0))
        for piece in call.pending:
            self.produced += 1
            events.append(ToolCallEvent(call.call_id, call.name, piece, 1))
        call.pending.clear()
        return events

    def finish(self) -> Finish:
        """The closing event, once the stream has ended."""
        reason = _FINISH_REASONS.get(self.finish_reason or "stop", StopReason.END_TURN)
        if any(c.announced for c in self._calls.values()):
            reason = StopReason.TOOL_USE  # some servers say "stop" after tool calls
        if self.matched is not None and reason is StopReason.END_TURN:
            reason = StopReason.STOP_SEQUENCE
        input_tokens, output_tokens = self.usage or (self.input_tokens, self.produced)
        matched = self.matched if reason is StopReason.STOP_SEQUENCE else None
        return Finish(reason, input_tokens, output_tokens, matched)


def _error_text(error: object) -> str:
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str):
            return message
    if isinstance(error, str):
        return error
    return json.dumps(error)[:500]


# --- request building -------------------------------------------------------------------------


def chat_messages(request: GenerationRequest) -> list[dict[str, Any]]:
    """The request's conversation as OpenAI chat messages (tool turns included)."""
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        for result in message.tool_results:
            content = f"Error: {result.content}" if result.is_error else result.content
            messages.append({"role": "tool", "tool_call_id": result.call_id, "content": content})
        if message.tool_calls:
            messages.append(
                {
                    "role": "assistant",
                    "content": message.text or None,
                    "tool_calls": [
                        {
                            "id": call.call_id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                        for call in message.tool_calls
                    ],
                }
            )
        elif message.text or not message.tool_results:
            messages.append({"role": message.role, "content": message.text})
    return messages


def request_body(request: GenerationRequest, model: str) -> dict[str, Any]:
    """The JSON body for `/chat/completions` (or `/completions` when the prompt is raw)."""
    sampling = request.sampling
    body: dict[str, Any] = {"model": model, "stream": True, "max_tokens": sampling.max_tokens}
    body["stream_options"] = {"include_usage": True}
    if request.raw_prompt is not None:
        body["prompt"] = request.raw_prompt
    else:
        body["messages"] = chat_messages(request)
    for key, value in (
        ("temperature", sampling.temperature),
        ("top_p", sampling.top_p),
        ("top_k", sampling.top_k),  # not OpenAI's, but vLLM, SGLang and llama.cpp accept it
        ("seed", sampling.seed),
    ):
        if value is not None:
            body[key] = value
    if sampling.stop_sequences:
        body["stop"] = list(sampling.stop_sequences)
    if request.tools and request.raw_prompt is None:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": dict(tool.input_schema),
                },
            }
            for tool in request.tools
        ]
        choice = request.tool_choice
        if choice.mode == "tool":
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        else:
            body["tool_choice"] = {"any": "required"}.get(choice.mode, choice.mode)
    if request.response_schema is not None and request.raw_prompt is None:
        # Structured output: OpenAI's json_schema response format (vLLM, SGLang, llama.cpp
        # and Ollama constrain decoding with it).
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": "response",
                "schema": dict(request.response_schema),
                "strict": True,
            },
        }
    return body


# --- the engine -------------------------------------------------------------------------------


@dataclass(slots=True)
class PrefixCacheStats:
    """The upstream's prefix-cache use over the streamed answers that reported it (health)."""

    reported: int = 0
    """Answers whose usage said how many prompt tokens were cached."""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    warm: int = 0
    """Answers with at least half of their prompt tokens cached (a warm prefix-cache hit)."""

    def record(self, mapper: ChunkMapper) -> None:
        if mapper.cached_tokens is None or mapper.usage is None:
            return
        prompt = mapper.usage[0]
        self.reported += 1
        self.prompt_tokens += prompt
        self.cached_tokens += mapper.cached_tokens
        self.warm += 1 if prompt and 2 * mapper.cached_tokens >= prompt else 0


class OpenAICompatEngine(Engine):
    """Streams from an OpenAI-compatible server at `upstream` (a base URL ending in `/v1`)."""

    def __init__(
        self,
        upstream: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float | None = None,
        name: str = "openai",
    ) -> None:
        self.name = name
        self.upstream = upstream.rstrip("/")
        self.model = model
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._state: Literal["loading", "ready", "failed"] = "loading"
        self._detail = f"waiting for upstream {self.upstream}"
        self._answered = False
        self.cache = PrefixCacheStats()

    # -- lifecycle --------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream, application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers())
        return self._session

    async def start(self) -> None:
        """Poll `GET /models` until it answers, then keep checking it now and then."""
        while True:
            await self._check()
            await asyncio.sleep(MONITOR_SECONDS if self._answered else POLL_SECONDS)

    async def probe(self, timeout_s: float) -> str | None:
        """One readiness check (an engine pool's active health check): None when the
        upstream answered `GET /models`, else what is wrong."""
        await self._check(timeout_s)
        return None if self._state == "ready" else self._detail or self._state

    async def _check(self, timeout_s: float = 5.0) -> None:
        try:
            timeout = aiohttp.ClientTimeout(total=timeout_s)
            async with self._client().get(f"{self.upstream}/models", timeout=timeout) as r:
                if r.status != 200:
                    raise EngineError(f"GET /models answered HTTP {r.status}")
                listing = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, EngineError, ValueError) as exc:
            if self._answered:
                self._state = "failed"
            self._detail = f"upstream {self.upstream} unreachable: {exc or type(exc).__name__}"
            return
        if self.model is None:
            ids = [m.get("id") for m in listing.get("data") or () if isinstance(m, dict)]
            names = [i for i in ids if isinstance(i, str)]
            if not names:
                self._detail = f"upstream {self.upstream} lists no models"
                return
            self.model = names[0]
        self._answered = True
        self._state, self._detail = "ready", ""

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def health(self) -> EngineHealth:
        extra: dict[str, object] = {"upstream": self.upstream}
        if self.model is not None:
            extra["model"] = self.model
        if self.cache.reported:
            extra["prefix_cache"] = dataclasses.asdict(self.cache)
        return EngineHealth(
            ready=self._state == "ready", state=self._state, detail=self._detail, extra=extra
        )

    def count_tokens(self, request: GenerationRequest) -> int:
        """Approximate: the scripted word-piece tokenizer (see the module docstring)."""
        return len(tokenize(prompt_text(request)))

    # -- generation -------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        if not self._answered:
            raise EngineNotReady(f"engine {self.name!r}: {self._detail}")
        assert self.model is not None
        path = "/completions" if request.raw_prompt is not None else "/chat/completions"
        body = request_body(request, self.model)
        mapper = ChunkMapper(request.sampling.stop_sequences, self.count_tokens(request))
        decoder = SSEDecoder()
        timeout = aiohttp.ClientTimeout(total=self._timeout_s, sock_connect=10)
        try:
            response = await self._client().post(
                f"{self.upstream}{path}", json=body, timeout=timeout
            )
        except aiohttp.ClientConnectionError as exc:
            raise EngineUnavailable(f"upstream {self.upstream} unreachable: {exc}") from exc
        except TimeoutError as exc:
            raise EngineTimeout(f"upstream {self.upstream} timed out") from exc
        sent = False  # whether an event has been yielded: decides how a cut stream fails
        try:
            if response.status != 200:
                raise status_error(response.status, await response.text())
            if not response.content_type.startswith("text/event-stream"):
                # Some servers answer a stream request with one JSON body: map it as one chunk
                # (checked for a finish before any of it is passed on).
                events = mapper.feed(_as_chunk(await response.text()))
                if mapper.finish_reason is None:
                    raise cut_off(self.upstream, "answered without a finish_reason", sent)
                for event in events:
                    yield event
            else:
                async for raw in response.content.iter_any():
                    for data in decoder.feed(raw):
                        for event in mapper.feed(data):
                            sent = True
                            yield event
                    if mapper.done:
                        break
                for data in decoder.close():
                    for event in mapper.feed(data):
                        sent = True
                        yield event
                if mapper.finish_reason is None:
                    how = "sent [DONE]" if mapper.done else "closed the stream"
                    raise cut_off(self.upstream, f"{how} without a finish_reason", sent)
                self.cache.record(mapper)
        except aiohttp.ClientError as exc:
            raise cut_off(self.upstream, f"broke off the stream: {exc}", sent) from exc
        except TimeoutError as exc:
            raise EngineTimeout(f"upstream {self.upstream} timed out") from exc
        finally:
            # Closing (not releasing) drops the connection, so an upstream still generating
            # sees the client go away and stops.
            response.close()
        yield mapper.finish()


def cut_off(upstream: str, how: str, sent: bool) -> EngineError:
    """The error for an upstream answer that ended without a finish: nothing sent yet, the
    upstream is unavailable (a 503 the SDKs retry); after events, the stream failed (an
    exception inside the client's stream). Never a normal finish with truncated output."""
    detail = f"upstream {upstream} {how}"
    return UpstreamStreamError(detail) if sent else EngineUnavailable(detail)


def status_error(status: int, text: str) -> EngineError:
    """The engine error for a non-200 answer from the upstream."""
    try:
        payload = json.loads(text)
        message = _error_text(payload.get("error", payload.get("detail", payload)))
    except (ValueError, AttributeError):
        message = text.strip()[:500]
    detail = f"upstream answered HTTP {status}: {message}"
    if status in (429, 503):
        return EngineUnavailable(detail)
    if status in (400, 404, 413, 422):
        return EngineRequestError(detail)
    return EngineError(detail)


def _as_chunk(text: str) -> str:
    """A non-streamed completion rewritten as one streamed chunk (message → delta)."""
    try:
        payload = json.loads(text)
    except ValueError:
        return text  # the mapper reports it as a malformed event
    if not isinstance(payload, dict):
        return text
    for choice in payload.get("choices") or ():
        if isinstance(choice, dict) and "message" in choice:
            choice["delta"] = choice.pop("message")
    return json.dumps(payload)
