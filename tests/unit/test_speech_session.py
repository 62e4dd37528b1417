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

from outcrop.engines.scripted import ScriptedConfig, ScriptedEngine
from outcrop.speech.audio import float_to_pcm16
from outcrop.speech.protocol import INTERRUPTED_TEXT
from outcrop.speech.session import SessionOptions, SpeechSession
from outcrop.types import GenerationEvent, GenerationRequest
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


async def test_tool_use_waits_for_the_result_and_continues() -> None:
    engine = Recording(ScriptedConfig())
    s, events = session(engine, [])
    nova = NovaInput()
    tools = [{"toolSpec": {"name": "lookup", "description": "Looks up.",
              "inputSchema": {"json": "{}"}}}]  # fmt: skip
    await send(s, *nova.opening(tools=tools))
    call = '<tool_call>{"name": "lookup", "arguments": {"q": 1}}</tool_call>'
    await send(s, *nova.text("USER", call, interactive=True))
    while not any("toolUse" in e["event"] for e in events):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    tool_use = next(e["event"]["toolUse"] for e in events if "toolUse" in e["event"])
    assert (tool_use["toolName"], json.loads(tool_use["content"])) == ("lookup", {"q": 1})
    assert "lookup: Looks up." in engine.requests[0].messages[0].text
    await send(s, *nova.tool_result(tool_use["toolUseId"], "42"), nova.prompt_end(),
               nova.session_end())  # fmt: skip
    out = NovaOutput([e["event"] for e in events])
    check_linked(out)
    assert out.texts("ASSISTANT", "FINAL")[-1] == "Echo: Result of tool lookup: 42"
    assert engine.requests[1].messages[-2].text == f"Echo: {call}"


async def test_noise_without_words_is_not_answered() -> None:
    s, events = session(ScriptedEngine(), [""])
    nova = NovaInput()
    await send(s, *nova.opening(), nova.audio_start("mic"))
    await talk(s, nova, spoken("Hmm.") + silence(1.0))
    await send(s, nova.content_end("mic"), nova.prompt_end(), nova.session_end())
    assert not [e for e in events if "completionStart" in e["event"]]
