"""InvokeModelWithBidirectionalStream with `aws-sdk-bedrock-runtime` (awscrt, TLS + ALPN h2).

A spoken question (espeak-ng) goes in as 16 kHz audio events sent as a client sends them; the
server's Whisper transcript must come back as the USER text, and the answer's audio must be
speech Whisper understands, at the rate asked for. Barge-in, tool use, bad input and the
session's time limits are checked against `outcrop serve` running as a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path

import pytest

from outcrop.speech.audio import duration_s
from tests.conformance.smithy_bidi import SmithyStream
from tests.conformance.speech_fixtures import LONG_ANSWER, LONG_SONIC
from tests.support.server import ServerProcess
from tests.support.speech import (
    INTERRUPTED,
    NovaInput,
    NovaOutput,
    assert_speech_at,
    check_linked,
    pieces,
    silence,
    spoken,
    words,
)

QUESTION = "What is the capital of France?"
SECOND = "Tell me about the weather."


async def speak(stream: SmithyStream, nova: NovaInput, name: str, pcm: bytes) -> None:
    for piece in pieces(pcm):
        await stream.send(nova.audio(name, piece))


async def end_session(stream: SmithyStream, nova: NovaInput, audio: str | None = None) -> None:
    if audio is not None:
        await stream.send(nova.content_end(audio))
    await stream.send(nova.prompt_end())
    await stream.send(nova.session_end())
    await stream.close_input()
    await stream.wait_end(30)


@pytest.mark.parametrize("rate", [24000, 8000])
async def test_spoken_question_gets_transcript_and_spoken_answer(
    speech_server: ServerProcess, tls_files: tuple[Path, Path], rate: int
) -> None:
    nova = NovaInput()
    async with SmithyStream(speech_server.tls_url, tls_files[0]) as stream:
        await stream.send_all(nova.opening(rate=rate))
        await stream.send(nova.audio_start("mic"))
        await speak(stream, nova, "mic", spoken(QUESTION) + silence(1.0))
        await stream.wait_for("completionEnd")
        await end_session(stream, nova, "mic")
    assert stream.error is None
    out = NovaOutput(stream.events)
    check_linked(out)
    (transcript,) = out.texts("USER")
    assert words(QUESTION) <= words(transcript)
    answer = " ".join(out.texts("ASSISTANT", "FINAL"))
    assert words(answer) >= words(QUESTION) | {"echo"}
    assert out.texts("ASSISTANT", "SPECULATIVE") == out.texts("ASSISTANT", "FINAL")
    audio_starts = [c for c in out.named("contentStart") if c["type"] == "AUDIO"]
    assert {c["audioOutputConfiguration"]["sampleRateHertz"] for c in audio_starts} == {rate}
    audio = out.audio()
    heard = assert_speech_at(audio, rate, answer)
    assert "capital" in heard and "france" in heard
    # Real speech at `rate`: about as long as the voice takes to say it (~2.5 s).
    assert 1.5 < duration_s(audio, rate) < 4.0
    # Small chunks (100 ms), streamed rather than in one piece.
    sizes = [len(a["content"]) for a in out.named("audioOutput")]
    assert len(sizes) >= 10 and max(sizes) <= (rate // 10 * 2 * 4 // 3 + 4)
    # Nova Sonic's order within the turn.
    first = {name: out.names.index(name) for name in ("completionStart", "audioOutput")}
    assert out.names[0] == "completionStart" and first["audioOutput"] > 3
    assert out.names[-2:] == ["usageEvent", "completionEnd"]
    assert out.stop_reasons("AUDIO")[-1] == "END_TURN"
    usage = out.named("usageEvent")[-1]
    assert usage["details"]["total"]["input"]["speechTokens"] > 0
    assert usage["totalTokens"] == usage["totalInputTokens"] + usage["totalOutputTokens"]


async def test_barge_in_interrupts_and_the_new_turn_is_answered(
    speech_server: ServerProcess, tls_files: tuple[Path, Path]
) -> None:
    nova = NovaInput()
    async with SmithyStream(speech_server.tls_url, tls_files[0], LONG_SONIC) as stream:
        await stream.send_all(nova.opening())
        await stream.send(nova.audio_start("mic"))
        await speak(stream, nova, "mic", spoken(QUESTION) + silence(1.0))
        await stream.wait_for("audioOutput", count=5)
        # The client keeps its microphone open: silence, then the user talks over the answer.
        interrupted_at = time.monotonic()
        await speak(stream, nova, "mic", spoken(SECOND) + silence(1.0))
        await stream.wait_for("completionEnd", count=2, within=90)
        await end_session(stream, nova, "mic")
    assert stream.error is None
    out = NovaOutput(stream.events)
    check_linked(out)
    first, second = out.completions()
    ends = out.named("completionEnd")
    assert [e["stopReason"] for e in ends] == ["INTERRUPTED", "END_TURN"]
    # The interruption, as Nova Sonic signals it: the AUDIO block and a text block end
    # INTERRUPTED, the text being { "interrupted" : true }.
    first_events = [e for e in out.events if next(iter(e.values()))["completionId"] == first]
    interrupted = [
        body for e in first_events for name, body in e.items()
        if name == "contentEnd" and body["stopReason"] == "INTERRUPTED"
    ]  # fmt: skip
    assert [c["type"] for c in interrupted] == ["AUDIO", "TEXT"]
    assert INTERRUPTED in out.texts("ASSISTANT")
    # Generation and synthesis stopped: far less audio went out than the whole answer takes.
    assert duration_s(out.audio(first), 24000) < 10.0
    # The new turn is transcribed and answered, with audio.
    user_texts = out.texts("USER")
    assert len(user_texts) == 2 and {"weather"} <= words(user_texts[1])
    second_audio = out.audio(second)
    assert duration_s(second_audio, 24000) > 2.0
    assert_speech_at(second_audio[: 24000 * 2 * 6], 24000, LONG_ANSWER.split(".")[0])
    stopped = next(t for t, e in stream.received if "contentEnd" in e
               and e["contentEnd"]["stopReason"] == "INTERRUPTED")  # fmt: skip
    assert stopped - interrupted_at < 5.0


async def test_text_question_and_tool_use(
    speech_server: ServerProcess, tls_files: tuple[Path, Path]
) -> None:
    """The engine's tool call becomes toolUse; the toolResult continues the turn, as on Nova
    Sonic: contentStart TOOL, toolUse (toolName, toolUseId, content), contentEnd TOOL_USE, then
    the client's toolResult, then the spoken answer, all in one completion.

    The tools reach the engine as tools (not as prompt text): the scripted engine calls the
    offered tool with arguments valid for its schema, and answers the result by echoing it.
    """
    schema = {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris"]}},
              "required": ["city"]}  # fmt: skip
    tools = [{"toolSpec": {"name": "getWeather", "description": "Weather in a city.",
              "inputSchema": {"json": json.dumps(schema)}}}]  # fmt: skip
    nova = NovaInput()
    async with SmithyStream(speech_server.tls_url, tls_files[0]) as stream:
        await stream.send_all(nova.opening(tools=tools, rate=16000))
        await stream.send_all(nova.text("USER", "What is the weather in Paris?", interactive=True))
        await stream.wait_for("toolUse")
        tool_use = next(e["toolUse"] for e in stream.events if "toolUse" in e)
        assert tool_use["toolName"] == "getWeather"
        assert json.loads(tool_use["content"]) == {"city": "Paris"}
        await stream.send_all(nova.tool_result(tool_use["toolUseId"], '{"sky": "sunny"}'))
        await stream.wait_for("completionEnd")
        await end_session(stream, nova)
    assert stream.error is None
    out = NovaOutput(stream.events)
    check_linked(out)
    assert len(out.completions()) == 1
    assert out.stop_reasons("TOOL") == ["TOOL_USE"]
    assert out.names.index("toolUse") < out.names.index("textOutput")
    assert out.texts("ASSISTANT", "FINAL") == ['Echo: {"sky": "sunny"}']
    assert out.stop_reasons("AUDIO")[-1] == "END_TURN"


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (lambda n: [n.prompt_start()], "The first event must be sessionStart"),
        (lambda n: [n.session_start(), *n.text("SYSTEM", "hi")], "before promptStart"),
        (lambda n: [n.session_start(), n.prompt_start(), *n.text("USER", "hi")],
         "first content of a prompt must have the SYSTEM role"),
        (lambda n: [*n.opening(), n.audio_start("mic", rate=44100)],
         "sampleRateHertz must be 8000, 16000 or 24000"),
        (lambda n: [*n.opening(), n.audio_start("mic", mediaType="audio/mp3")],
         "mediaType must be audio/lpcm"),
        (lambda n: [*n.opening(), n.audio_start("mic"),
                    {"event": {"audioInput": {"promptName": n.prompt, "contentName": "mic",
                                              "content": "not base64!"}}}],
         "not valid base64"),
        (lambda n: [*n.opening(), n.audio("mic", b"\0\0")], "not open"),
    ],
)  # fmt: skip
async def test_bad_input_ends_the_session_with_a_validation_exception(
    speech_server: ServerProcess, tls_files: tuple[Path, Path], events: object, message: str
) -> None:
    from aws_sdk_bedrock_runtime.models import ValidationException

    nova = NovaInput()
    async with SmithyStream(speech_server.tls_url, tls_files[0]) as stream:
        await stream.send_all(events(nova))  # type: ignore[operator]
        await stream.wait_end(15)
    assert isinstance(stream.error, ValidationException), stream.error
    assert message in stream.error.message


async def test_a_client_that_stops_sending_times_out_and_others_are_unaffected(
    limits_server: ServerProcess, tls_files: tuple[Path, Path]
) -> None:
    from aws_sdk_bedrock_runtime.models import ValidationException

    silent, talker = NovaInput(), NovaInput()
    async with (
        SmithyStream(limits_server.tls_url, tls_files[0]) as idle,
        SmithyStream(limits_server.tls_url, tls_files[0]) as busy,
    ):
        await idle.send_all(silent.opening())
        await busy.send_all(talker.opening())
        await busy.send_all(talker.text("USER", "Are you there?", interactive=True))
        # The busy client is live: its quiet microphone keeps sending while it waits for the
        # answer, however long a loaded machine takes to give it (input_timeout_s = 2).
        await busy.send(talker.audio_start("mic"))

        async def microphone() -> None:
            while not busy.ended.is_set():
                await busy.send(talker.audio("mic", silence(0.5)))
                await asyncio.sleep(0.5)

        live = asyncio.create_task(microphone())
        try:
            started = time.monotonic()
            await idle.wait_end(15)
            assert time.monotonic() - started > 1.5  # input_timeout_s = 2
            await busy.wait_for("completionEnd")
        finally:
            live.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await live
        await end_session(busy, talker, audio="mic")
    assert isinstance(idle.error, ValidationException)
    assert idle.error.message == "Timed out waiting for input events"
    assert busy.error is None
    assert NovaOutput(busy.events).texts("ASSISTANT", "FINAL") == ["Echo: Are you there?"]


async def test_session_limit_ends_with_model_timeout(
    limits_server: ServerProcess, tls_files: tuple[Path, Path]
) -> None:
    from aws_sdk_bedrock_runtime.models import ModelTimeoutException

    nova = NovaInput()
    async with SmithyStream(limits_server.tls_url, tls_files[0]) as stream:
        await stream.send_all(nova.opening())
        await stream.send(nova.audio_start("mic"))
        started = time.monotonic()
        while not stream.ended.is_set() and time.monotonic() - started < 15:
            await stream.send(nova.audio("mic", silence(0.5)))  # a live, quiet microphone
            await asyncio.sleep(0.5)
        assert 4.0 < time.monotonic() - started < 7.0  # session_limit_s = 5
    assert isinstance(stream.error, ModelTimeoutException)
    assert stream.error.message == (
        "Model has timed out in processing the request. Try your request again."
    )


async def test_verify_mode_accepts_the_sdk_chain_and_refuses_a_wrong_key(
    verifying_speech_server: ServerProcess,
    tls_files: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aws_sdk_bedrock_runtime.models import ValidationException

    nova = NovaInput()
    async with SmithyStream(verifying_speech_server.tls_url, tls_files[0]) as stream:
        await stream.send_all(nova.opening())
        await stream.send_all(nova.text("USER", "Signed and sound.", interactive=True))
        await stream.wait_for("completionEnd")
        await end_session(stream, nova)
    assert stream.error is None, stream.error

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-the-server-knows")
    assert os.environ["AWS_SECRET_ACCESS_KEY"].startswith("not")
    forged = NovaInput()
    async with SmithyStream(verifying_speech_server.tls_url, tls_files[0]) as stream:
        await stream.send_all(forged.opening())
        await stream.wait_end(15)
    assert isinstance(stream.error, ValidationException)
    assert "signature of input event 1 does not match" in stream.error.message
    assert stream.events == []
