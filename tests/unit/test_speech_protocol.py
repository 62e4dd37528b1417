"""The Nova Sonic input state machine and output event shapes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from outcrop.speech import protocol as p
from tests.support.speech import NovaInput


def raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def feed(events: list[dict[str, Any]], machine: p.InputProtocol | None = None) -> list[Any]:
    machine = machine or p.InputProtocol()
    return [machine.receive(raw(e)) for e in events]


def test_a_whole_session_parses_in_order() -> None:
    nova = NovaInput(prompt="p")
    turns = {"endpointingSensitivity": "HIGH"}
    parsed = feed([
        nova.session_start(max_tokens=77, turnDetectionConfiguration=turns),
        nova.prompt_start(rate=8000), *nova.text("SYSTEM", "Be brief."),
        nova.audio_start("mic", rate=24000), nova.audio("mic", b"\1\0\2\0"),
        nova.content_end("mic"), nova.prompt_end(), nova.session_end(),
    ])  # fmt: skip
    start, prompt = parsed[0], parsed[1]
    assert start == p.SessionStart(p.InferenceConfig(77, 0.7, 0.9), "HIGH")
    assert prompt.audio_output == p.AudioOutputConfig(8000, "matthew")
    assert isinstance(parsed[3], p.TextInput) and parsed[3].content == "Be brief."
    audio_start = parsed[5]
    assert (audio_start.type, audio_start.role, audio_start.sample_rate) == ("AUDIO", "USER", 24000)
    assert parsed[6] == p.AudioInput(audio_start, b"\1\0\2\0")
    assert [type(e) for e in parsed[7:]] == [p.ContentEnd, p.PromptEnd, p.SessionEnd]


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (lambda n: [n.prompt_start()], "first event must be sessionStart, not promptStart"),
        (lambda n: [n.session_start(), n.session_start()], "already received"),
        (lambda n: [n.session_start(), *n.text("SYSTEM", "x")], "before promptStart"),
        (lambda n: [n.session_start(), n.prompt_start(), *n.text("USER", "x")], "SYSTEM role"),
        (lambda n: [*n.opening(), n.audio_start("a", rate=11025)], "8000, 16000 or 24000"),
        (lambda n: [*n.opening(), n.audio_start("a", sampleSizeBits=8)], "sampleSizeBits"),
        (lambda n: [*n.opening(), n.audio_start("a", channelCount=2)], "channelCount"),
        (lambda n: [*n.opening(), n.audio_start("a"), n.audio("a", b"\0")], "whole 16-bit"),
        (lambda n: [*n.opening(), n.audio_start("a"), n.audio_start("b")], "already open"),
        (lambda n: [*n.opening(), n.audio("a", b"\0\0")], "'a', which is not open"),
        (lambda n: [*n.opening(), *n.tool_result("nope", "{}")], "No toolUse"),
        (lambda n: [*n.opening(), n.session_end(), n.prompt_end()], "after sessionEnd"),
        (lambda n: [n.session_start(), {"event": {"promptStart": {"promptName": "x",
                    "audioOutputConfiguration": {"mediaType": "audio/lpcm",
                    "sampleRateHertz": 24000}}}}], "voiceId is required"),
        (lambda n: [n.session_start(max_tokens=0)], "maxTokens"),
        (lambda n: [n.session_start(), n.prompt_start(tools=[{"toolSpec": {"name": "t",
                    "inputSchema": {"json": "not json"}}}])], "must be a JSON object"),
        (lambda n: [n.session_start(), n.prompt_start(tools=[{"toolSpec": {"name": "t",
                    "inputSchema": {"json": "[1]"}}}])], "must be a JSON object"),
        (lambda n: [{"event": {"a": {}, "b": {}}}], '{"event": {"<name>": {...}}}'),
        (lambda n: [n.session_start(), n.prompt_start(), {"event": {"promptEnd": {
                    "promptName": "other"}}}], "names promptName 'other'"),
    ],
)  # fmt: skip
def test_out_of_order_and_malformed_events(events: Any, message: str) -> None:
    machine = p.InputProtocol()
    with pytest.raises(p.ProtocolError) as raised:
        for event in events(NovaInput(prompt="p")):
            machine.receive(raw(event))
    assert message in str(raised.value)


def test_bad_base64_and_bad_json() -> None:
    nova = NovaInput(prompt="p")
    machine = p.InputProtocol()
    feed([*nova.opening(), nova.audio_start("a")], machine)
    bad = {"event": {"audioInput": {"promptName": "p", "contentName": "a", "content": "@@"}}}
    with pytest.raises(p.ProtocolError, match="not valid base64"):
        machine.receive(raw(bad))
    with pytest.raises(p.ProtocolError, match="not valid JSON"):
        machine.receive(b"\xff{")


def test_tool_results_answer_the_tool_use_they_name() -> None:
    nova = NovaInput(prompt="p")
    machine = p.InputProtocol()
    feed(nova.opening(), machine)
    machine.expect_tool_result("t1")
    start, result, _end = feed(nova.tool_result("t1", '{"ok": 1}'), machine)
    assert start.tool_use_id == "t1" and result.content == '{"ok": 1}'
    with pytest.raises(p.ProtocolError, match="No toolUse"):
        feed(nova.tool_result("t1", "{}"), machine)  # answered already


def test_output_events_carry_their_ids() -> None:
    out = p.OutputEvents("prompt-1", session_id="s")
    start = out.text_start("c", "k", "ASSISTANT", "SPECULATIVE")["event"]["contentStart"]
    assert start["additionalModelFields"] == '{"generationStage":"SPECULATIVE"}'
    assert (start["sessionId"], start["promptName"], start["completionId"], start["contentId"]) == (
        "s", "prompt-1", "c", "k")  # fmt: skip
    audio = out.audio_output("c", "k", b"\1\2")["event"]["audioOutput"]
    assert base64.b64decode(audio["content"]) == b"\1\2"
    end = out.content_end("c", "k", "AUDIO", "INTERRUPTED")["event"]["contentEnd"]
    assert (end["stopReason"], end["type"]) == ("INTERRUPTED", "AUDIO")
    total = p.UsageCounts(10, 2, 30, 4)
    usage = out.usage("c", p.UsageCounts(1, 1, 1, 1), total)["event"]["usageEvent"]
    assert usage["totalTokens"] == 46 and usage["details"]["total"]["output"]["speechTokens"] == 30
