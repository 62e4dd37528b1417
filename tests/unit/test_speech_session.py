"""A speech session driven event by event, with the scripted engine and the real turn detector.

The speech models are replaced by a fake with the same interface (recognition returns a fixed
transcript, synthesis 60 ms of tone per word), so barge-in, history and tool use are checked
deterministically and fast; the real models are exercised by the conformance tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np

from outcrop.engines.base import Engine
from outcrop.engines.scripted import ScriptedConfig, ScriptedEngine, ScriptedToolCall
from outcrop.speech.audio import float_to_pcm16
from outcrop.speech.protocol import INTERRUPTED_TEXT
from outcrop.speech.session import MAX_TOOL_ROUNDS, SessionOptions, SpeechSession
from outcrop.types import (
    Finish,
    GenerationEvent,
    GenerationRequest,
    ToolCall,
    ToolChoice,
    ToolResult,
    ToolSpec,
)
from outcrop.wire.errors import ThrottlingException
from tests.support.speech import NovaInput, NovaOutput, check_linked, pieces, silence, spoken


class FakeModels:
    def __init__(self, transcripts: list[str]) -> None:
        self.transcripts = transcripts

    async def transcribe(self, pcm16k: bytes) -> str:
        return self.transcripts.pop(0)

    async def synthesize(self, text: str, rate: int) -> bytes:
        t = np.arange(int(rate * 0.06 * len(text.split()))) / rate
        return float_to_pcm16((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))


class Recording(ScriptedEngine):
    def __init__(self, config: ScriptedConfig) -> None:
        super().__init__(config)
        self.requests: list[GenerationRequest] = []

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        self.requests.append(request)
        async for event in super().generate(request):
            yield event


def session(engine: ScriptedEngine, transcripts: list[str]) -> tuple[SpeechSession, list[Any]]:
    events: list[Any] = []
    s = SpeechSession(FakeModels(transcripts), engine, events.append, events.append,  # type: ignore[arg-type]
                      SessionOptions(chunk_ms=100, lead_s=0.2))  # fmt: skip
    return s, events


async def send(s: SpeechSession, *events: dict[str, Any]) -> None:
    for event in events:
        await s.receive(json.dumps(event).encode())


async def talk(s: SpeechSession, nova: NovaInput, pcm: bytes) -> None:
    for piece in pieces(pcm):
        await send(s, nova.audio("mic", piece))


async def test_barge_in_stops_the_answer_and_keeps_the_history() -> None:
    answer = "One two three four five. Six seven eight nine ten. " * 4
    engine = Recording(ScriptedConfig(text=answer))
    s, events = session(engine, ["What is the capital of France?", "Stop please."])
    nova = NovaInput()
    await send(s, *nova.opening(system="Be brief."), nova.audio_start("mic"))
    await talk(s, nova, spoken("What is the capital of France?") + silence(1.0))
    while not any("audioOutput" in e["event"] for e in events):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # some of the answer plays
    await talk(s, nova, spoken("Stop please.") + silence(1.0))
    await send(s, nova.content_end("mic"), nova.prompt_end(), nova.session_end())
    out = NovaOutput([e["event"] for e in events])
    check_linked(out)
    assert [e["stopReason"] for e in out.named("completionEnd")] == ["INTERRUPTED", "END_TURN"]
    assert out.texts("USER") == ["What is the capital of France?", "Stop please."]
    assert INTERRUPTED_TEXT in out.texts("ASSISTANT", "FINAL")
    first = out.completions()[0]
    said_first = [t["content"] for t in out.named("textOutput")
                  if t["completionId"] == first and t["role"] == "ASSISTANT"
                  and t["content"] != INTERRUPTED_TEXT]  # fmt: skip
    assert 0 < len(said_first) < 8  # the rest was never generated or spoken
    # The second request carries the system prompt, the first question and what was said.
    second = engine.requests[-1].messages
    assert [m.role for m in second] == ["system", "user", "assistant", "user"]
    assert second[0].text == "Be brief." and second[-1].text == "Stop please."
    assert second[2].text.startswith("One two three four five.")
    assert len(second[2].text) < len(answer) / 2


LOOKUP_SCHEMA = {"type": "object", "properties": {"q": {"type": "integer"}}, "required": ["q"]}
LOOKUP = [{"toolSpec": {"name": "lookup", "description": "Looks up.",
           "inputSchema": {"json": json.dumps(LOOKUP_SCHEMA)}}}]  # fmt: skip


async def wait_for(events: list[Any], name: str, count: int = 1) -> list[dict[str, Any]]:
    """The first `count` output events called `name`, once that many have been emitted."""
    async with asyncio.timeout(30):
        while True:
            found = [e["event"][name] for e in events if name in e["event"]]
            if len(found) >= count:
                return found[:count]
            await asyncio.sleep(0.01)


async def test_tool_use_goes_through_the_engines_tool_interface() -> None:
    engine = Recording(ScriptedConfig())
    s, events = session(engine, [])
    nova = NovaInput()
    await send(s, *nova.opening(tools=LOOKUP))
    await send(s, *nova.text("USER", "Find the answer.", interactive=True))
    (tool_use,) = await wait_for(events, "toolUse")
    # The engine was offered the tool (not told about it in the prompt) and called it: the
    # scripted engine calls the first offered tool with arguments made from its schema.
    first = engine.requests[0]
    assert first.tools == (ToolSpec("lookup", "Looks up.", LOOKUP_SCHEMA),)
    assert first.tool_choice == ToolChoice("auto")
    assert "lookup" not in first.messages[0].text
    assert (tool_use["toolName"], json.loads(tool_use["content"])) == ("lookup", {"q": 1})
    await send(s, *nova.tool_result(tool_use["toolUseId"], '{"answer": 42}'), nova.prompt_end(),
               nova.session_end())  # fmt: skip
    out = NovaOutput([e["event"] for e in events])
    check_linked(out)
    # Nova Sonic's order: the TOOL block (toolUse, TOOL_USE) before the answer, one completion.
    assert out.stop_reasons("TOOL") == ["TOOL_USE"]
    assert out.names.index("toolUse") < out.names.index("textOutput")
    assert len(out.completions()) == 1
    assert out.texts("ASSISTANT", "FINAL") == ['Echo: {"answer": 42}']
    # The call and its result went back to the engine as tool turns, linked by the toolUseId.
    second = engine.requests[1].messages
    assert [m.role for m in second] == ["system", "user", "assistant", "user"]
    call_id = tool_use["toolUseId"]
    assert second[2].tool_calls == (ToolCall(call_id, "lookup", '{"q": 1}'),)
    assert second[3].tool_results == (ToolResult(call_id, '{"answer": 42}'),)


class AlwaysCalls(Recording):
    """Calls `lookup` whenever it may, whatever the tool results say."""

    def planned_tool_calls(self, request: GenerationRequest) -> list[ScriptedToolCall]:
        if request.tool_choice.mode == "none":
            return []
        return [ScriptedToolCall("lookup", '{"q": 7}')]


async def test_after_the_last_tool_round_the_model_must_answer_in_text() -> None:
    engine = AlwaysCalls(ScriptedConfig())
    s, events = session(engine, [])
    nova = NovaInput()
    await send(s, *nova.opening(tools=LOOKUP))
    await send(s, *nova.text("USER", "Keep looking.", interactive=True))
    for round_ in range(1, MAX_TOOL_ROUNDS + 1):
        tool_use = (await wait_for(events, "toolUse", round_))[-1]
        await send(s, *nova.tool_result(tool_use["toolUseId"], str(round_)))
    await send(s, nova.prompt_end(), nova.session_end())
    out = NovaOutput([e["event"] for e in events])
    assert out.stop_reasons("TOOL") == ["TOOL_USE"] * MAX_TOOL_ROUNDS
    modes = [r.tool_choice.mode for r in engine.requests]
    assert modes == ["auto"] * MAX_TOOL_ROUNDS + ["none"]
    assert out.texts("ASSISTANT", "FINAL") == [f"Echo: {MAX_TOOL_ROUNDS}"]


async def test_a_tool_result_that_never_comes_is_an_error_result() -> None:
    engine = Recording(ScriptedConfig())
    events: list[Any] = []
    s = SpeechSession(FakeModels([]), engine, events.append, events.append,  # type: ignore[arg-type]
                      SessionOptions(tool_result_timeout_s=0.05))  # fmt: skip
    nova = NovaInput()
    await send(s, *nova.opening(tools=LOOKUP))
    await send(s, *nova.text("USER", "Find it.", interactive=True))
    await wait_for(events, "completionEnd")
    (result,) = engine.requests[1].messages[-1].tool_results
    assert result.is_error and "did not arrive in time" in result.content


class Admission:
    """Records what the session admits; refuses from the `refuse_from`-th generation on."""

    def __init__(self, answering: ScriptedEngine, refuse_from: int = 99) -> None:
        self.answering = answering
        self.refuse_from = refuse_from
        self.admitted: list[GenerationRequest] = []
        self.finishes: list[Finish] = []

    def admit(self, engine: Engine, request: GenerationRequest) -> Engine:
        if len(self.admitted) + 1 >= self.refuse_from:
            raise ThrottlingException("Too many tokens, please wait before trying again.")
        self.admitted.append(request)
        return self.answering

    def finished(self, finish: Finish) -> None:
        self.finishes.append(finish)


async def test_each_generation_is_admitted_and_its_usage_reported() -> None:
    served = Recording(ScriptedConfig())
    answering = Recording(ScriptedConfig(text="Scripted answer."))
    admission = Admission(answering, refuse_from=3)
    events: list[Any] = []
    s = SpeechSession(FakeModels([]), served, events.append, events.append,  # type: ignore[arg-type]
                      SessionOptions(), admission=admission)  # fmt: skip
    nova = NovaInput()
    await send(s, *nova.opening())
    await send(s, *nova.text("USER", "First.", interactive=True))
    await wait_for(events, "completionEnd")
    await send(s, *nova.text("USER", "Second.", interactive=True))
    await wait_for(events, "completionEnd", 2)
    # The admitted engine answered, not the served one; each Finish was reported.
    assert served.requests == [] and len(answering.requests) == 2
    assert admission.admitted == answering.requests
    assert [f.output_tokens for f in admission.finishes] == [3, 3]
    # A refused turn ends the session with the refusal (a modelled stream exception).
    await send(s, *nova.text("USER", "Third.", interactive=True))
    async with asyncio.timeout(30):
        while not any(isinstance(e, ThrottlingException) for e in events):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert len(answering.requests) == 2


async def test_noise_without_words_is_not_answered() -> None:
    s, events = session(ScriptedEngine(), [""])
    nova = NovaInput()
    await send(s, *nova.opening(), nova.audio_start("mic"))
    await talk(s, nova, spoken("Hmm.") + silence(1.0))
    await send(s, nova.content_end("mic"), nova.prompt_end(), nova.session_end())
    assert not [e for e in events if "completionStart" in e["event"]]
