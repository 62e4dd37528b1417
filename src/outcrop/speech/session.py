"""One speech-to-speech conversation: input events in, Nova Sonic output events out.

`SpeechSession.receive` takes each decoded input event in arrival order. Text blocks set the
system prompt and history or ask a question; the USER audio block feeds the turn detector.
When a turn ends, a response task runs: speech recognition (its transcript goes out as the
USER text, FINAL), then the language engine with the system prompt and the history, its text
cut into sentences, each sentence synthesized and sent as it is ready: ASSISTANT text
(SPECULATIVE), an AUDIO block in `chunk_ms` pieces, ASSISTANT text (FINAL), the last with
END_TURN and the others PARTIAL_TURN.

Tools: the prompt's tools are offered to the engine as `GenerationRequest.tools`, and the
engine's tool calls (`ToolCallEvent`s, a generation ending with TOOL_USE) become TOOL blocks as
Nova Sonic sends them: contentStart (TOOL), toolUse (toolName, toolUseId, the input as a JSON
string in content), contentEnd (TOOL_USE). The response waits for the client's toolResult for
each toolUseId, puts the calls and their results in the history (as an assistant turn's
`tool_calls` and the next user turn's `tool_results`) and generates again, in the same
completion, until the model answers in text; after `max_tool_rounds` rounds of calls the model
must answer without tools.

Each generation is admitted through `admission` (the invocation layer's `CallAdmission`:
quotas, a scripted answer queued for the session) and reports its usage back to it.

While the user's audio block is open, output audio is paced to real time with `lead_s` sent
ahead of playback, so the assistant is "speaking" until its audio would have finished playing.
Speech detected then is a barge-in: the response task is cancelled (generation and synthesis
stop), the open AUDIO block ends INTERRUPTED, an ASSISTANT text `{ "interrupted" : true }`
block ends INTERRUPTED, and the new turn is answered with the history (including what the
assistant had said) kept.

Events go out through `emit` (a callback that must not block); failures of a response go out
through `fail` as AWS errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from outcrop.engines.base import Engine, EngineError
from outcrop.invocation.engines import generate
from outcrop.speech import protocol as p
from outcrop.speech.audio import StreamResampler, chunked, duration_s
from outcrop.speech.models import SpeechModels, SpeechModelsUnavailable
from outcrop.speech.text import SentenceSplitter
from outcrop.speech.turns import END_OF_TURN_MS, RATE, SpeechEnded, SpeechStarted, TurnDetector
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationRequest,
    Role,
    SamplingParams,
    TokenEvent,
    ToolCall,
    ToolCallEvent,
    ToolChoice,
    ToolResult,
    ToolSpec,
)

log = logging.getLogger("outcrop.speech")

SPEECH_TOKENS_PER_S = 25.0
"""Estimated speech tokens per second of audio, for usage events (Nova's rate is unpublished)."""
MAX_TOOL_ROUNDS = 4
"""Tool-call rounds in one response by default (`[speech] max_tool_rounds`); the generation
after the last may not call a tool."""
TOOL_RESULT_TIMEOUT = "the tool result did not arrive in time"


class TurnAdmission(Protocol):
    """Admits each generation of the session (invocation/admission.py `CallAdmission`)."""

    def admit(self, engine: Engine, request: GenerationRequest) -> Engine:
        """Run the admission checks for `request`; the engine that answers it."""
        ...

    def finished(self, finish: Finish) -> None:
        """One generation's usage."""
        ...


@dataclass(frozen=True, slots=True)
class SessionOptions:
    chunk_ms: int = 100
    """Duration of each audioOutput event."""
    lead_s: float = 0.5
    """How far output audio may run ahead of (simulated) playback while the user can speak."""
    tool_result_timeout_s: float = 60.0
    max_tool_rounds: int = MAX_TOOL_ROUNDS


@dataclass(slots=True)
class Turn:
    audio: bytes | None = None
    """16 kHz PCM of the user's utterance, or None for a text turn."""
    text: str = ""


@dataclass(slots=True)
class ResponseState:
    """What a response has put on the wire, so an interruption can close it properly."""

    completion_id: str
    audio_content: str | None = None
    spoken: list[str] = field(default_factory=list)


class History:
    """The conversation as chat messages; consecutive messages of one role are merged, except
    that nothing follows an assistant turn's tool calls or precedes a user turn's tool results
    within one message (`ChatMessage` keeps calls after the text and results before it)."""

    def __init__(self) -> None:
        self.messages: list[ChatMessage] = []

    def add(
        self,
        role: Role,
        text: str,
        tool_calls: tuple[ToolCall, ...] = (),
        tool_results: tuple[ToolResult, ...] = (),
    ) -> None:
        text = text.strip()
        if not text and not tool_calls and not tool_results:
            return
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == role and not last.tool_calls and not tool_results:
            self.messages.pop()
            text = f"{last.text}\n{text}" if last.text and text else last.text or text
            tool_results = last.tool_results
        self.messages.append(ChatMessage(role, text, tool_calls, tool_results))


class SpeechSession:
    def __init__(
        self,
        models: SpeechModels,
        engine: Engine,
        emit: Callable[[dict[str, Any]], None],
        fail: Callable[[BaseException], None],
        options: SessionOptions | None = None,
        admission: TurnAdmission | None = None,
    ) -> None:
        self.models = models
        self.engine = engine
        self.admission = admission
        """Admits each generation and may pick another engine for it (a queued scripted
        response); None: every generation runs on `engine`, unchecked."""
        self._emit = emit
        self._fail = fail
        self.options = options or SessionOptions()
        self.protocol = p.InputProtocol()
        self.inference = p.InferenceConfig()
        self.endpointing = "MEDIUM"
        self.out: p.OutputEvents | None = None
        self.prompt: p.PromptStart | None = None
        self.system: list[str] = []
        self.history = History()
        self.usage = p.UsageCounts()
        self._texts: dict[str, list[str]] = {}
        self._detector: TurnDetector | None = None
        self._resampler: StreamResampler | None = None
        self._task: asyncio.Task[None] | None = None
        self._state: ResponseState | None = None
        self._tool_results: dict[str, asyncio.Future[str]] = {}
        self._play_end = 0.0
        self._turn: Turn | None = None
        self._carry = b""
        self.audio_open = False

    # -- input -------------------------------------------------------------------------------

    async def receive(self, raw: bytes) -> bool:
        """Handle one input event; True once the session has ended (sessionEnd)."""
        event = self.protocol.receive(raw)
        if isinstance(event, p.AudioInput):
            await self._audio(event)
        elif isinstance(event, p.TextInput | p.ToolResult):
            self._texts.setdefault(event.block.content_name, []).append(event.content)
        elif isinstance(event, p.ContentStart):
            self._content_start(event)
        elif isinstance(event, p.ContentEnd):
            await self._content_end(event.block)
        elif isinstance(event, p.SessionStart):
            self.inference = event.inference
            self.endpointing = event.endpointing
        elif isinstance(event, p.PromptStart):
            self.prompt = event
            self.out = p.OutputEvents(event.prompt_name)
        elif isinstance(event, p.PromptEnd):
            await self._end_audio()
        elif isinstance(event, p.SessionEnd):
            await self.finish()
            return True
        return False

    async def finish(self) -> None:
        """Let the response under way complete (no more input will come)."""
        await self._end_audio()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def close(self) -> None:
        """Release everything: cancel the response under way."""
        for future in self._tool_results.values():
            future.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _content_start(self, block: p.ContentStart) -> None:
        if block.type == "AUDIO":
            assert block.sample_rate is not None
            end_ms = END_OF_TURN_MS[self.endpointing]
            self._detector = TurnDetector(end_ms=end_ms)
            self._resampler = StreamResampler(block.sample_rate, RATE)
            self.audio_open = True

    async def _content_end(self, block: p.ContentStart) -> None:
        if block.type == "AUDIO":
            await self._end_audio()
            return
        text = "".join(self._texts.pop(block.content_name, []))
        if block.type == "TOOL":
            assert block.tool_use_id is not None
            future = self._tool_results.get(block.tool_use_id)
            if future is not None and not future.done():
                future.set_result(text)
            return
        if block.role in ("SYSTEM", "SYSTEM_SPEECH"):
            self.system.append(text)
        elif block.role == "ASSISTANT":
            self.history.add("assistant", text)
        elif block.interactive:
            self._start(Turn(text=text))
        else:
            self.history.add("user", text)

    async def _audio(self, event: p.AudioInput) -> None:
        assert self._detector is not None and self._resampler is not None
        for turn_event in self._detector.feed(self._resampler.feed(event.pcm)):
            if isinstance(turn_event, SpeechStarted):
                if self.responding:
                    await self.interrupt()
            elif isinstance(turn_event, SpeechEnded):
                audio, self._carry = self._carry + turn_event.audio, b""
                self._start(Turn(audio=audio))

    async def _end_audio(self) -> None:
        """The user's audio block closed: a turn in progress ends with it."""
        if not self.audio_open:
            return
        self.audio_open = False
        detector = self._detector
        if detector is not None and detector.speaking:
            for turn_event in detector.feed(b"\0" * 2 * RATE * 2):
                if isinstance(turn_event, SpeechEnded):
                    audio, self._carry = self._carry + turn_event.audio, b""
                    self._start(Turn(audio=audio))
        self._detector = None

    # -- responses ---------------------------------------------------------------------------

    @property
    def responding(self) -> bool:
        """A response is under way (being prepared, generated or played)."""
        return self._task is not None and not self._task.done()

    def _start(self, turn: Turn) -> None:
        previous = self._task
        self._turn = turn
        self._task = asyncio.create_task(self._run(turn, previous))

    async def _run(self, turn: Turn, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await previous
        try:
            await self._respond(turn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("speech response failed")
            self._fail(exc)

    async def interrupt(self) -> None:
        """Barge-in: stop the response under way and tell the client as Nova Sonic does."""
        task, state, turn = self._task, self._state, self._turn
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        self._play_end = 0.0
        if state is None or self.out is None:
            # Nothing was answered yet: the user paused and went on. Their earlier words
            # belong to the turn now starting.
            if turn is not None and turn.audio is not None:
                self._carry = turn.audio + self._carry
            return
        out, cid = self.out, state.completion_id
        if state.audio_content is not None:
            self._emit(out.content_end(cid, state.audio_content, "AUDIO", "INTERRUPTED"))
        content_id = p.new_id()
        self._emit(out.text_start(cid, content_id, "ASSISTANT", "FINAL"))
        self._emit(out.text_output(cid, content_id, "ASSISTANT", p.INTERRUPTED_TEXT))
        self._emit(out.content_end(cid, content_id, "TEXT", "INTERRUPTED"))
        self.history.add("assistant", " ".join(state.spoken))
        self._emit(out.completion_end(cid, "INTERRUPTED"))
        self._state = None

    async def _respond(self, turn: Turn) -> None:
        out = self.out
        if out is None:
            raise p.ProtocolError("No prompt is open to answer in.")
        state = ResponseState(p.new_id())
        cid = state.completion_id
        delta = p.UsageCounts()
        if turn.audio is not None:
            text = await self._transcribe(turn.audio)
            delta.input_speech = round(duration_s(turn.audio, RATE) * SPEECH_TOKENS_PER_S)
            if not text:
                return  # noise, not words: nothing to answer
            self._state = state
            self._emit(out.completion_start(cid))
            content_id = p.new_id()
            self._emit(out.text_start(cid, content_id, "USER", "FINAL"))
            self._emit(out.text_output(cid, content_id, "USER", text))
            self._emit(out.content_end(cid, content_id, "TEXT", "END_TURN"))
        else:
            text = turn.text
            self._state = state
            self._emit(out.completion_start(cid))
        self.history.add("user", text)
        rounds = self.options.max_tool_rounds
        for round_ in range(rounds + 1):
            calls = await self._generate(state, delta, tools_allowed=round_ < rounds)
            if not calls:
                break
            results = await self._use_tools(state, calls)
            self.history.add("assistant", " ".join(state.spoken), tool_calls=calls)
            state.spoken.clear()
            self.history.add("user", "", tool_results=results)
        self.history.add("assistant", " ".join(state.spoken))
        self._state = None
        self.usage.add(delta)
        self._emit(out.usage(cid, delta, self.usage))
        self._emit(out.completion_end(cid, "END_TURN"))

    async def _transcribe(self, audio: bytes) -> str:
        try:
            return await self.models.transcribe(audio)
        except SpeechModelsUnavailable:
            raise
        except Exception as exc:
            raise SpeechModelsUnavailable(f"Speech recognition failed: {exc}") from exc

    def _request(self, tools_allowed: bool) -> GenerationRequest:
        system = "\n\n".join(s for s in self.system if s.strip())
        messages = [ChatMessage("system", system)] if system else []
        messages += self.history.messages
        sampling = SamplingParams(
            max_tokens=self.inference.max_tokens,
            temperature=self.inference.temperature,
            top_p=self.inference.top_p,
        )
        tools = tuple(
            ToolSpec(t.name, t.description, t.schema())
            for t in (self.prompt.tools if self.prompt is not None else ())
        )
        choice = ToolChoice("auto" if tools_allowed else "none")
        return GenerationRequest(tuple(messages), sampling, tools=tools, tool_choice=choice)

    def _answering_engine(self, request: GenerationRequest) -> Engine:
        if self.admission is None:
            return self.engine
        return self.admission.admit(self.engine, request)

    async def _generate(
        self, state: ResponseState, delta: p.UsageCounts, *, tools_allowed: bool = True
    ) -> tuple[ToolCall, ...]:
        """Stream one generation into speech; the tool calls it ended with, if any."""
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        calls: dict[str, list[str]] = {}
        """The engine's call ID: the tool's name, then the argument JSON's fragments."""
        finished: list[Finish] = []

        async def produce() -> None:
            splitter = SentenceSplitter()
            try:
                request = self._request(tools_allowed)
                engine = self._answering_engine(request)
                async with aclosing(generate(engine, request)) as events:
                    async for event in events:
                        if isinstance(event, TokenEvent):
                            if event.kind == "text":  # reasoning is not spoken
                                for sentence in splitter.feed(event.text):
                                    sentences.put_nowait(sentence)
                        elif isinstance(event, ToolCallEvent):
                            calls.setdefault(event.call_id, [event.name]).append(event.arguments)
                        elif isinstance(event, Finish):
                            finished.append(event)
                            delta.input_text += event.input_tokens
                            delta.output_text += event.output_tokens
                            if self.admission is not None:
                                self.admission.finished(event)
                for sentence in splitter.flush():
                    sentences.put_nowait(sentence)
            finally:
                sentences.put_nowait(None)

        producer = asyncio.create_task(produce())
        try:
            pending = await sentences.get()
            while pending is not None:
                await self._say(state, pending, delta)
                following = await sentences.get()
                last = following is None and not calls
                self._close_segment(state, pending, "END_TURN" if last else "PARTIAL_TURN")
                pending = following
            await producer  # re-raises an engine failure
        finally:
            if not producer.done():
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError, EngineError):
                    await producer
        return tuple(
            ToolCall(p.new_id(), parts[0], _arguments("".join(parts[1:])))
            for parts in calls.values()
        )

    async def _say(self, state: ResponseState, sentence: str, delta: p.UsageCounts) -> None:
        """One sentence: SPECULATIVE text, then its audio (the AUDIO block stays open)."""
        out, cid = self.out, state.completion_id
        assert out is not None and self.prompt is not None
        audio_config = self.prompt.audio_output
        audio = b""
        if audio_config is not None:
            audio = await self.models.synthesize(sentence, audio_config.sample_rate)
        content_id = p.new_id()
        self._emit(out.text_start(cid, content_id, "ASSISTANT", "SPECULATIVE"))
        self._emit(out.text_output(cid, content_id, "ASSISTANT", sentence))
        self._emit(out.content_end(cid, content_id, "TEXT", "PARTIAL_TURN"))
        state.spoken.append(sentence)
        if audio_config is None:
            return
        rate = audio_config.sample_rate
        state.audio_content = p.new_id()
        self._emit(out.audio_start(cid, state.audio_content, rate))
        for piece in chunked(audio, rate, self.options.chunk_ms):
            await self._pace(duration_s(piece, rate))
            self._emit(out.audio_output(cid, state.audio_content, piece))
        delta.output_speech += round(duration_s(audio, rate) * SPEECH_TOKENS_PER_S)

    def _close_segment(self, state: ResponseState, sentence: str, reason: p.StopReason) -> None:
        out, cid = self.out, state.completion_id
        assert out is not None
        if state.audio_content is not None:
            self._emit(out.content_end(cid, state.audio_content, "AUDIO", reason))
            state.audio_content = None
        content_id = p.new_id()
        self._emit(out.text_start(cid, content_id, "ASSISTANT", "FINAL"))
        self._emit(out.text_output(cid, content_id, "ASSISTANT", sentence))
        self._emit(out.content_end(cid, content_id, "TEXT", reason))

    async def _pace(self, seconds: float) -> None:
        """Keep output audio at most `lead_s` ahead of playback while the user can speak."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._play_end = max(self._play_end, now)
        ahead = self._play_end - now
        if self.audio_open and ahead > self.options.lead_s:
            await asyncio.sleep(ahead - self.options.lead_s)
        self._play_end += seconds

    async def _use_tools(
        self, state: ResponseState, calls: tuple[ToolCall, ...]
    ) -> tuple[ToolResult, ...]:
        """Send each call as a TOOL block (its `call_id` is the toolUseId) and wait for the
        client's toolResults; a result that does not come in time is an error result."""
        out, cid = self.out, state.completion_id
        assert out is not None
        loop = asyncio.get_running_loop()
        futures: dict[str, asyncio.Future[str]] = {}
        for call in calls:
            futures[call.call_id] = self._tool_results[call.call_id] = loop.create_future()
            self.protocol.expect_tool_result(call.call_id)
            content_id = p.new_id()
            self._emit(out.tool_start(cid, content_id))
            self._emit(out.tool_use(cid, content_id, call.name, call.call_id, call.arguments))
            self._emit(out.content_end(cid, content_id, "TOOL", "TOOL_USE"))
        results: list[ToolResult] = []
        deadline = loop.time() + self.options.tool_result_timeout_s
        try:
            for call_id, future in futures.items():
                try:
                    content = await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
                except TimeoutError:
                    results.append(
                        ToolResult(call_id, json.dumps({"error": TOOL_RESULT_TIMEOUT}), True)
                    )
                else:
                    results.append(ToolResult(call_id, content))
        finally:
            for call_id in futures:
                self._tool_results.pop(call_id, None)
        return tuple(results)


def _arguments(text: str) -> str:
    """A call's argument JSON as toolUse.content carries it (an object; `{}` when empty)."""
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return text
    return json.dumps(value if value is not None else {})
